"""Local development: `make run`. Embedded Redis and SQLite when nothing else is configured."""

from config.embedded import ensure_redis_url

ensure_redis_url()  # before base reads REDIS_URL

from .base import *  # noqa: E402,F403
from .base import env  # noqa: E402

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = SECRET_KEY or "dev-insecure-not-for-production"  # noqa: F405
DEMO_LOGINS = True
FLOWER_BASIC_AUTH = FLOWER_BASIC_AUTH or "admin:admin"  # noqa: F405
