"""Settings shared by every environment. Every knob comes from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

from .environment import env  # noqa: E402 - the one environ.Env()
from .log_config import logging_config  # noqa: E402

SECRET_KEY: str = env("SECRET_KEY", default="")
DEBUG: bool = env.bool("DEBUG", default=False)
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "backend.ops",  # before admin: its admin/base_site.html links Flower and the status API
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "backend.market",
    "backend.portfolios",
    "backend.alerts",
    "backend.performance",
    "backend.api",
    "backend.dashboard",
    "tasks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "backend.ops.context.ops_links",
            ],
        },
    },
]


def database_config(url: str | None) -> dict[str, Any]:
    """DATABASE_URL, or SQLite under var/ in WAL mode so web, worker and beat can share it."""
    if url:
        config: dict[str, Any] = env.db_url_config(url)
        if config["ENGINE"] == "django.db.backends.postgresql":
            config.setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
            config["CONN_HEALTH_CHECKS"] = True
            config.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
        if config["ENGINE"] != "django.db.backends.sqlite3":
            return config
    else:
        VAR_DIR.mkdir(exist_ok=True)
        config = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(VAR_DIR / "tickerflow.sqlite3")}
    config["OPTIONS"] = {
        # WAL lets readers and one writer work at once; IMMEDIATE takes the write lock at
        # BEGIN so concurrent writers wait (timeout) instead of failing with "database is locked".
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    return config


DATABASES = {"default": database_config(env("DATABASE_URL", default=""))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- Redis: one URL serves the broker, cache, channel layer and locks ---------------------
REDIS_URL: str = env("REDIS_URL", default="")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "tf",
        "TIMEOUT": 300,
        "OPTIONS": {"socket_timeout": 5, "socket_connect_timeout": 3},
    }
}

CHANNEL_LAYER_CAPACITY: int = env.int("CHANNEL_LAYER_CAPACITY", default=1000)
# The core layer by default; docs/operations.md, "Fan-out figures", has the figures for both. The push hub
# sends one layer message per published batch, so either layer carries it.
CHANNEL_LAYER_BACKEND: str = env("CHANNEL_LAYER_BACKEND", default="channels_redis.core.RedisChannelLayer")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": CHANNEL_LAYER_BACKEND,
        "CONFIG": {
            # redis-py 8 gives every connection a 5 s read timeout, the same as the layer's
            # blocking pop: without None every idle consumer dies with 1011 (channels_redis#422).
            "hosts": [
                {
                    "address": REDIS_URL,
                    "socket_timeout": None,
                    "max_connections": env.int("CHANNEL_LAYER_MAX_CONNECTIONS", default=1000),
                }
            ],
            "capacity": CHANNEL_LAYER_CAPACITY,
            "prefix": "tf-asgi",
        },
    }
}

# --- Celery --------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
# Nothing in the product reads task results (Flower shows them from worker events), and
# storing them put Redis on every task's failure path: a task failing while Redis restarts
# raised out of the pool's callback and took the worker down. Off unless asked for (the
# test suite reads results: config/settings/test.py).
CELERY_RESULT_BACKEND: str | None = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# A dead worker's unacked message comes back after the visibility timeout (default 1 h):
# short tasks want minutes. retry_backoff_max of every task stays below it.
CELERY_VISIBILITY_TIMEOUT: int = env.int("CELERY_VISIBILITY_TIMEOUT", default=300)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    # kombu sweeps for expired unacked messages every interval x throttle seconds (default
    # 10 x 10): without this a dead worker's batch waits up to 100 s past the timeout.
    "unacked_restore_interval": max(1, min(10, CELERY_VISIBILITY_TIMEOUT // 4)),
    "unacked_restore_throttle": 1,
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"socket_timeout": 10, "socket_connect_timeout": 5}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Keeps Celery's Django fixup from closing the database connection around every task;
# config/celery.py closes old connections the way Django does around requests instead.
CELERY_DB_REUSE_MAX = 1_000_000_000
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_SOFT_TIME_LIMIT: int = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=60)
CELERY_TASK_TIME_LIMIT: int = env.int("CELERY_TASK_TIME_LIMIT", default=90)
CELERY_WORKER_SEND_TASK_EVENTS = True  # Flower shows tasks live
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Our LOGGING (JSON, redaction, task ids) applies in workers too.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# SIGTERM is remapped to a cold shutdown (Procfile: REMAP_SIGTERM=SIGQUIT) that first gives
# running tasks this long to finish; what is still running then goes back to the queue
# (acks_late). Heroku sends SIGKILL 30 s after SIGTERM.
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT: float = env.float("CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", default=20.0)
CELERY_WORKER_ENABLE_SOFT_SHUTDOWN_ON_IDLE = True

# --- Real-time pipeline and WebSocket knobs (docs/operations.md, "Settings") -------------------------
REALTIME_UPDATE_INTERVAL: int = env.int("REALTIME_UPDATE_INTERVAL", default=30)
REALTIME_BATCH_SIZE: int = env.int("REALTIME_BATCH_SIZE", default=50)
REALTIME_CACHE_TIMEOUT: int = env.int("REALTIME_CACHE_TIMEOUT", default=300)
REALTIME_MAX_WORKERS: int = env.int("REALTIME_MAX_WORKERS", default=2)
# Seconds between the starts of two revaluation rounds while batches keep changing prices
# (backend/portfolios/services/revaluation/coalesce.py); the first change is revalued at once.
PORTFOLIO_RECALC_INTERVAL: float = env.float("PORTFOLIO_RECALC_INTERVAL", default=0.25)
# Database connections one revaluation run may use at once: a run of 2,000+ portfolios (a
# full refresh: of all portfolios) is split into shares revalued side by side
# (backend/portfolios/services/revaluation/spans.py).
PORTFOLIO_RECALC_CONNECTIONS: int = env.int("PORTFOLIO_RECALC_CONNECTIONS", default=2)
CELERY_WORKER_CONCURRENCY = REALTIME_MAX_WORKERS

WEBSOCKET_TIMEOUT: int = env.int("WEBSOCKET_TIMEOUT", default=300)
WEBSOCKET_MAX_CONNECTIONS_PER_USER: int = env.int("WEBSOCKET_MAX_CONNECTIONS_PER_USER", default=5)
WEBSOCKET_MAX_SUBSCRIPTIONS_PER_CONNECTION: int = env.int("WEBSOCKET_MAX_SUBSCRIPTIONS_PER_CONNECTION", default=50)
WEBSOCKET_MESSAGE_SIZE_LIMIT: int = env.int("WEBSOCKET_MESSAGE_SIZE_LIMIT", default=1024)
WEBSOCKET_RATE_LIMIT_MESSAGES_PER_MINUTE: int = env.int("WEBSOCKET_RATE_LIMIT_MESSAGES_PER_MINUTE", default=60)
# Push layer (docs/operations.md, "Settings"): how often a long connection's user/token/session is
# re-checked, an optional permission every WebSocket user needs (4403 without it), the
# heartbeat expiry after which a dead Daphne process's connections are forgotten, and how
# many unsent bytes a slow client may hold before its updates are coalesced.
WEBSOCKET_AUTH_RECHECK_SECONDS: int = env.int("WEBSOCKET_AUTH_RECHECK_SECONDS", default=60)
WEBSOCKET_REQUIRED_PERMISSION: str = env("WEBSOCKET_REQUIRED_PERMISSION", default="")
WEBSOCKET_NODE_TTL: int = env.int("WEBSOCKET_NODE_TTL", default=30)
# Garbage collection in a process serving WebSockets (config/gc_policy.py): CPython's
# thresholds once the hub starts (empty: leave CPython's), and the least seconds between two
# full collections the hub runs while no batch is flowing.
WEBSOCKET_GC_THRESHOLDS: tuple[int, ...] = tuple(
    env.list("WEBSOCKET_GC_THRESHOLDS", cast=int, default=[50_000, 20, 100])
)
WEBSOCKET_GC_COLLECT_INTERVAL: float = env.float("WEBSOCKET_GC_COLLECT_INTERVAL", default=60.0)
# The same for each Celery worker process, frozen when it starts (empty: leave CPython's).
WORKER_GC_THRESHOLDS: tuple[int, ...] = tuple(env.list("WORKER_GC_THRESHOLDS", cast=int, default=[10_000, 10, 10]))
WEBSOCKET_SLOW_CLIENT_BUFFER_BYTES: int = env.int("WEBSOCKET_SLOW_CLIENT_BUFFER_BYTES", default=256 * 1024)
PREDICTION_HORIZON_MINUTES: int = env.int("PREDICTION_HORIZON_MINUTES", default=60)
PREDICTION_HISTORY_POINTS: int = env.int("PREDICTION_HISTORY_POINTS", default=500)

MARKET_DATA_SOURCE_NAMES = ("yahoo", "alpha_vantage", "finnhub", "simulated")
MARKET_DATA_SOURCES: list[str] = env.list("MARKET_DATA_SOURCES", default=["simulated"])
YAHOO_FINANCE_BASE_URL: str = env("YAHOO_FINANCE_BASE_URL", default="https://query1.finance.yahoo.com")
YAHOO_FINANCE_COOKIE_URL: str = env("YAHOO_FINANCE_COOKIE_URL", default="https://fc.yahoo.com")
ALPHA_VANTAGE_BASE_URL: str = env("ALPHA_VANTAGE_BASE_URL", default="https://www.alphavantage.co")
ALPHA_VANTAGE_API_KEY: str = env("ALPHA_VANTAGE_API_KEY", default="")
FINNHUB_BASE_URL: str = env("FINNHUB_BASE_URL", default="https://finnhub.io")
FINNHUB_API_KEY: str = env("FINNHUB_API_KEY", default="")

# --- Price pipeline (backend/market/services, tasks/prices.py) -----------------------------
MARKET_DATA_CONNECT_TIMEOUT: float = env.float("MARKET_DATA_CONNECT_TIMEOUT", default=3.05)
MARKET_DATA_READ_TIMEOUT: float = env.float("MARKET_DATA_READ_TIMEOUT", default=10.0)
# Concurrent upstream requests inside one batch (Yahoo sub-requests, per-symbol sources).
MARKET_DATA_PARALLEL_REQUESTS: int = env.int("MARKET_DATA_PARALLEL_REQUESTS", default=4)
YAHOO_SYMBOLS_PER_REQUEST: int = min(env.int("YAHOO_SYMBOLS_PER_REQUEST", default=50), 50)
# Requests per minute per source, shared by every worker (0 = unlimited). Free tiers:
# Alpha Vantage 5/min, Finnhub 60/min; Yahoo answers 429 after a few hundred in a burst.
MARKET_DATA_REQUESTS_PER_MINUTE: dict[str, int] = {
    "yahoo": env.int("YAHOO_REQUESTS_PER_MINUTE", default=300),
    "alpha_vantage": env.int("ALPHA_VANTAGE_REQUESTS_PER_MINUTE", default=5),
    "finnhub": env.int("FINNHUB_REQUESTS_PER_MINUTE", default=60),
    "simulated": 0,
}
MARKET_DATA_CIRCUIT_FAILURES: int = env.int("MARKET_DATA_CIRCUIT_FAILURES", default=5)
MARKET_DATA_CIRCUIT_COOLDOWN: float = env.float("MARKET_DATA_CIRCUIT_COOLDOWN", default=60.0)
PRICE_FETCH_MAX_RETRIES: int = env.int("PRICE_FETCH_MAX_RETRIES", default=3)
PRICE_RETRY_BACKOFF: float = env.float("PRICE_RETRY_BACKOFF", default=2.0)
PRICE_RETRY_BACKOFF_MAX: float = env.float("PRICE_RETRY_BACKOFF_MAX", default=60.0)
PRICE_FETCH_MAX_DELIVERIES: int = env.int("PRICE_FETCH_MAX_DELIVERIES", default=3)
PRICE_FETCH_SOFT_TIME_LIMIT: int = env.int("PRICE_FETCH_SOFT_TIME_LIMIT", default=45)
PRICE_FETCH_TIME_LIMIT: int = env.int("PRICE_FETCH_TIME_LIMIT", default=60)
# How long a run's record (its lock token, symbols, batches attempted) is kept at most.
PRICE_CYCLE_LOCK_TIMEOUT: int = env.int("PRICE_CYCLE_LOCK_TIMEOUT", default=300)
# Seconds a symbol's in-flight claim or the cycle lock outlives its last renewal: running
# batches renew them every third of this, so a killed worker's hold lapses this soon.
PRICE_INFLIGHT_TTL: int = env.int("PRICE_INFLIGHT_TTL", default=6)
PRICE_UNKNOWN_REPROBE_SECONDS: int = env.int("PRICE_UNKNOWN_REPROBE_SECONDS", default=86400)
# A retry waits in the worker unacknowledged: past the visibility timeout the broker would
# hand it to a second worker as well, so the backoff always stays well below it.
PRICE_RETRY_BACKOFF_MAX = min(PRICE_RETRY_BACKOFF_MAX, CELERY_VISIBILITY_TIMEOUT / 2)

# Declared here so django-celery-beat's DatabaseScheduler syncs it into the database at
# start (then editable in the admin). A tick older than one interval is dropped, not run late.
CELERY_BEAT_SCHEDULE = {
    "refresh-prices": {
        "task": "tasks.prices.refresh_prices",
        "schedule": float(REALTIME_UPDATE_INTERVAL),
        "options": {"expires": float(REALTIME_UPDATE_INTERVAL)},
    },
    # Yesterday's and today's daily values (docs/returns.md): hourly, so the first run after
    # midnight UTC closes the day and a late close is still picked up; idempotent.
    "close-daily-values": {"task": "tasks.performance.close_daily_values", "schedule": 3600.0},
}

FLOWER_BASIC_AUTH: str = env("FLOWER_BASIC_AUTH", default="")
FLOWER_URL: str = env("FLOWER_URL", default="http://localhost:5555/")

SECURE_SSL_REDIRECT: bool = env.bool("SECURE_SSL_REDIRECT", default=False)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "COERCE_DECIMAL_TO_STRING": False,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tickerflow API",
    "DESCRIPTION": "Real-time market data and portfolios. WebSocket protocol: see docs/protocol.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served locally: the docs page works offline
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

HEALTH_STALE_SECONDS: int = env.int("HEALTH_STALE_SECONDS", default=300)
METRICS_TOKEN: str = env("METRICS_TOKEN", default="")

LOG_LEVEL: str = env("LOG_LEVEL", default="INFO")
LOG_FORMAT: str = env("LOG_FORMAT", default="plain")  # "json" in production


LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL)

# seed_demo creates password logins only where this is true (dev settings).
DEMO_LOGINS: bool = False

# Streaming, alerts, email and login throttling: config/settings/features.py.
from .features import *  # noqa: E402,F403
