"""The test suite: real Redis and database (DATABASE_URL / REDIS_URL, or the embedded ones)."""

import os

from config.embedded import ensure_redis_url

ensure_redis_url()  # before base reads REDIS_URL

from .base import *  # noqa: E402,F403
from .base import DATABASES, REDIS_URL, VAR_DIR  # noqa: E402

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
# The suite reads task results (`.get()`); production stores none (base.py says why).
# A test can still run a worker exactly as production does with CELERY_RESULT_BACKEND="".
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", REDIS_URL) or None
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
