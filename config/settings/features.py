"""Settings of the features beside the price pipeline: streaming, alerts (and the email they
send), login throttling. Imported by base.py; every knob comes from the environment."""

from __future__ import annotations

from .environment import env

# --- Streaming (tasks/stream.py; docs/operations.md, "Streaming quotes") ------------------
# The `stream` process follows up to MARKET_STREAM_MAX_SYMBOLS tracked symbols on the
# provider's WebSocket (empty = off: the process idles) and stores each symbol's last trade
# every MARKET_STREAM_FLUSH_MS; beat keeps polling every symbol for the fields trades lack.
MARKET_STREAM_SOURCE: str = env("MARKET_STREAM_SOURCE", default="")
FINNHUB_WS_URL: str = env("FINNHUB_WS_URL", default="wss://ws.finnhub.io")
MARKET_STREAM_MAX_SYMBOLS: int = env.int("MARKET_STREAM_MAX_SYMBOLS", default=50)
MARKET_STREAM_FLUSH_MS: int = env.int("MARKET_STREAM_FLUSH_MS", default=250)

# --- Alerts (backend/alerts; docs/operations.md, "Alerts") ---------------------------------
# Active alerts a user may have at once (400 {"error": "alert_limit"} past it). Firings are
# emailed (to users with an address) only when ALERTS_EMAIL is on, through Django's email
# backend: EMAIL_URL, e.g. smtp+tls://user:password@smtp.example.com:587 (default: the console).
ALERTS_MAX_PER_USER: int = env.int("ALERTS_MAX_PER_USER", default=200)
ALERTS_EMAIL: bool = env.bool("ALERTS_EMAIL", default=False)
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND: str = _email["EMAIL_BACKEND"]
EMAIL_HOST: str = _email.get("EMAIL_HOST") or "localhost"
EMAIL_PORT: int = int(_email.get("EMAIL_PORT") or 25)
EMAIL_HOST_USER: str = _email.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD: str = _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS: bool = bool(_email.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL: bool = bool(_email.get("EMAIL_USE_SSL"))
EMAIL_TIMEOUT: int = 10
DEFAULT_FROM_EMAIL: str = env("DEFAULT_FROM_EMAIL", default="Tickerflow <alerts@localhost>")

# --- Login throttling (backend/api/logins.py; docs/operations.md, "Login throttling") ------
# More than USERNAME_FAILURES failed logins for one username, or ADDRESS_FAILURES from one
# address, within WINDOW_SECONDS: 429 with Retry-After on the token endpoint, /accounts/login/
# and the admin login. Counted in Redis, shared by every web process.
LOGIN_THROTTLE_ENABLED: bool = env.bool("LOGIN_THROTTLE_ENABLED", default=True)
LOGIN_THROTTLE_WINDOW_SECONDS: int = env.int("LOGIN_THROTTLE_WINDOW_SECONDS", default=900)
LOGIN_THROTTLE_USERNAME_FAILURES: int = env.int("LOGIN_THROTTLE_USERNAME_FAILURES", default=10)
LOGIN_THROTTLE_ADDRESS_FAILURES: int = env.int("LOGIN_THROTTLE_ADDRESS_FAILURES", default=100)

# --- Scale: subscribe answers and the web processes (docs/scale.md) -----------------------
# Asset subscribe answers (quotes, tracking status) are kept in each Daphne process's memory
# for WEBSOCKET_SNAPSHOT_TTL, refreshed by the events its hub routes; portfolio snapshots
# and token / session users are read at each subscribe / connect unless
# WEBSOCKET_AUTH_CACHE_SECONDS is raised; misses and concurrent reads are batched.
# WEBSOCKET_REDIS_MAX_CONNECTIONS bounds each process's registry pool: a burst waits for a
# pooled connection instead of failing. WEB_CONCURRENCY and WEB_LISTEN_BACKLOG are read by
# config/web.py itself, before Django starts.
WEBSOCKET_SNAPSHOT_TTL: float = env.float("WEBSOCKET_SNAPSHOT_TTL", default=30.0)
# 0 by default: a revoked token or an ended session is refused at the very next connect
# (concurrent connects still share one lookup). Raise it to trade that for fewer lookups.
WEBSOCKET_AUTH_CACHE_SECONDS: float = env.float("WEBSOCKET_AUTH_CACHE_SECONDS", default=0.0)
WEBSOCKET_REDIS_MAX_CONNECTIONS: int = env.int("WEBSOCKET_REDIS_MAX_CONNECTIONS", default=50)

# --- History backfill (tasks/history.py; docs/history-and-demo.md) --------------------------
# Days of daily closes loaded once for a symbol that becomes held without any history.
HISTORY_BACKFILL_DAYS: int = env.int("HISTORY_BACKFILL_DAYS", default=365)
