"""The stream process's state in Redis, for /api/health/, the status API and /metrics.

The process rewrites it every second (`stream_state_write`) with a short expiry, so a
process that died shows as not running within STATE_TTL seconds; any web process reads it
(`stream_status`). Nothing here raises on a Redis error: the reader says so in its answer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError

from backend.core.clock import iso_z
from backend.core.redis import redis_client

STATE_KEY = "tf:stream:state"
TRADES_KEY = "tf:stream:trades"  # symbol -> epoch seconds of its last trade
STATE_TTL = 15
# What a flush took, p50 / p99 in ms over the recent ones (tasks/stream.py): storing it,
# handing it on (the alert check and the publish), and both.
FLUSH_TIMES = tuple(f"{part}_{q}_ms" for part in ("store", "hand_on", "flush") for q in ("p50", "p99"))


def stream_state_write(*, state: Mapping[str, str | int | float], last_trades: Mapping[str, float]) -> None:
    """Replace the stored state in one round trip (called by the stream process each second)."""
    fields: dict[Any, Any] = {**state, "updated_at": time.time()}
    trades: dict[Any, Any] = dict(last_trades)
    pipe = redis_client().pipeline(transaction=True)
    pipe.delete(STATE_KEY, TRADES_KEY)
    pipe.hset(STATE_KEY, mapping=fields)
    if trades:
        pipe.hset(TRADES_KEY, mapping=trades)
    pipe.expire(STATE_KEY, STATE_TTL)
    pipe.expire(TRADES_KEY, STATE_TTL)
    pipe.execute()


def stream_state_clear() -> None:
    redis_client().delete(STATE_KEY, TRADES_KEY)


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else iso_z(datetime.fromtimestamp(epoch, tz=UTC))


def _age(epoch: float | None, now: float) -> float | None:
    return None if epoch is None else round(max(0.0, now - epoch), 3)


def stream_status() -> dict[str, Any]:
    """What health and status show: whether streaming is on, whether the process runs and
    holds its socket, the symbols it follows with each one's last trade time and age. The
    process's own record wins over this process's settings (compose may set the source for
    the stream service alone)."""
    source = settings.MARKET_STREAM_SOURCE or None
    report: dict[str, Any] = {"enabled": bool(source), "source": source, "running": False, "connected": False}
    try:
        client = redis_client()
        state: dict[str, str] = client.hgetall(STATE_KEY)  # type: ignore[assignment]
        trades: dict[str, str] = client.hgetall(TRADES_KEY)  # type: ignore[assignment]
    except RedisError as error:
        return {**report, "error": f"{type(error).__name__}: {error}"[:300]}
    if not state:
        return report
    report.update(enabled=True, source=state.get("source") or source)
    now = time.time()

    def number(name: str) -> float | None:
        value = state.get(name)
        return float(value) if value not in (None, "") else None

    followed = sorted(filter(None, state.get("followed", "").split(" ")))
    last = {symbol: float(epoch) for symbol, epoch in trades.items()}
    return {
        **report,
        "running": True,
        "connected": state.get("connected") == "1",
        "connected_since": _iso(number("connected_since")),
        "url": state.get("url") or None,
        "symbols_followed": len(followed),
        "max_symbols": settings.MARKET_STREAM_MAX_SYMBOLS,
        "flush_ms": int(number("flush_ms") or settings.MARKET_STREAM_FLUSH_MS),
        "messages_per_second": number("messages_per_second") or 0.0,
        "trades_per_second": number("trades_per_second") or 0.0,
        "reconnects": int(number("reconnects") or 0),
        "last_message_age_seconds": _age(number("last_message_at"), now),
        "last_error": state.get("last_error") or None,
        "flush_times_ms": {name.removesuffix("_ms"): number(name) for name in FLUSH_TIMES},
        "updated_age_seconds": _age(number("updated_at"), now),
        "symbols": {
            symbol: {"last_trade_at": _iso(last.get(symbol)), "last_trade_age_seconds": _age(last.get(symbol), now)}
            for symbol in followed
        },
    }
