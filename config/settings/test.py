"""The test suite: real Redis and database (DATABASE_URL / REDIS_URL, or the embedded ones)."""

from config.embedded import ensure_redis_url

ensure_redis_url()  # before base reads REDIS_URL

from .base import *  # noqa: E402,F403
from .base import DATABASES, VAR_DIR  # noqa: E402

SECRET_KEY = "test-insecure"  # noqa: S105
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so the Daphne and worker subprocesses of the live tests see it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
