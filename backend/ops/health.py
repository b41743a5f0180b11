"""What /api/health/ reports: each dependency checked for real, with a short timeout.

unhealthy (503): the database, Redis or the broker does not answer.
degraded (200): no worker answers a ping within 2 s, beat's last cycle is overdue, or the
newest quote is older than HEALTH_STALE_SECONDS.
`services.stream` shows the stream process (connected, symbols followed, messages per
second, each symbol's last trade age) without changing the status: polling covers for it.
"""

from __future__ import annotations

import time
from typing import Any, Literal, TypedDict

from celery import current_app
from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from backend.core.clock import iso_z
from backend.core.redis import redis_connect
from backend.market.models import Quote
from backend.market.services.status import price_feed_status
from backend.market.services.stream.state import stream_status

Status = Literal["healthy", "degraded", "unhealthy"]


class Check(TypedDict, total=False):
    ok: bool
    latency_ms: float
    error: str


def _timed(fn: Any) -> Check:
    started = time.perf_counter()
    try:
        fn()
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def database_check() -> Check:
    def probe() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    check = _timed(probe)
    if not check["ok"]:
        # A broken connection must not stay in this thread for the next request.
        connection.close_if_unusable_or_obsolete()
    return check


def redis_check(url: str | None = None) -> Check:
    def probe() -> None:
        client = redis_connect(url=url, socket_timeout=2, connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()

    return _timed(probe)


def broker_check() -> Check:
    # The configured app (config/celery.py) without importing it: config imports tasks.
    app = current_app

    def probe() -> None:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)

    return _timed(probe)


def workers_check(timeout: float = 2.0) -> dict[str, Any]:
    app = current_app
    started = time.perf_counter()
    try:
        # limit=1: answer as soon as one worker replies instead of always waiting `timeout`.
        replies = app.control.ping(timeout=timeout, limit=1) or []
    except Exception as exc:
        return {"ok": False, "count": 0, "error": f"{type(exc).__name__}: {exc}"[:300]}
    names = sorted(name for reply in replies for name in reply)
    return {
        "ok": bool(names),
        "count": len(names),
        "names": names,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }


def data_freshness() -> dict[str, Any]:
    newest = Quote.objects.aggregate(newest=Max("fetched_at"))["newest"]
    if newest is None:
        return {"last_update": None, "seconds_since_update": None, "is_stale": True}
    seconds = int((timezone.now() - newest).total_seconds())
    return {
        "last_update": iso_z(newest),
        "seconds_since_update": seconds,
        "is_stale": seconds > settings.HEALTH_STALE_SECONDS,
    }


def websocket_stats() -> dict[str, Any]:
    from backend.realtime.registry import ConnectionManager

    return dict(ConnectionManager().stats())


def health_report() -> tuple[Status, dict[str, Any]]:
    checks: dict[str, Any] = {"database": database_check(), "redis": redis_check(), "broker": broker_check()}
    services: dict[str, Any] = dict(checks)
    if not all(check["ok"] for check in checks.values()):
        status: Status = "unhealthy"
        # Without the database or Redis the other figures cannot be read; say so plainly.
        services["price_feed"] = {"running": False, "last_update": None}
        services["websocket_connections"] = None
        services["data_freshness"] = None
        services["stream"] = None
    else:
        services["workers"] = workers_check()
        services["price_feed"] = dict(price_feed_status())
        services["websocket_connections"] = websocket_stats()
        services["data_freshness"] = data_freshness()
        # Shown, not judged: while the stream is away beat's polling keeps prices fresh.
        services["stream"] = stream_status()
        healthy = (
            services["workers"]["ok"]
            and services["price_feed"]["running"]
            and not services["data_freshness"]["is_stale"]
        )
        status = "healthy" if healthy else "degraded"
    return status, {"status": status, "timestamp": iso_z(timezone.now()), "services": services}
