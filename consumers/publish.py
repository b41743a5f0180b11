"""The one way server code pushes to WebSocket clients.

Tasks call `publish_batch` once per batch with every event of that batch: ONE layer message to
the group every Daphne process's hub joins (consumers/hub.py), sent from one event loop whose
Redis connections are closed in that same loop (a new loop per `group_send` from sync code
leaks connections and raises "Event loop is closed": channels_redis#125, #332).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from backend.ops.metrics import counter_add

from .groups import BATCH_MESSAGE_TYPE, BROADCAST_GROUP, asset_group, portfolio_group, user_group
from .payloads import AssetUpdate, Notification, PortfolioUpdate, PositionUpdate, to_wire

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_MESSAGE = 1000


class Event(TypedDict):
    group: str
    type: str
    data: dict[str, Any]
    timestamp: str


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _event(group: str, kind: str, data: Any) -> Event:
    return {"group": group, "type": kind, "data": to_wire(dict(data)), "timestamp": _now()}


def asset_event(payload: AssetUpdate) -> Event:
    return _event(asset_group(payload["symbol"]), "asset_update", payload)


def portfolio_event(payload: PortfolioUpdate) -> Event:
    return _event(portfolio_group(payload["portfolio_id"]), "portfolio_update", payload)


def position_event(user_id: int, payload: PositionUpdate) -> Event:
    return _event(user_group(user_id), "position_update", payload)


def unknown_symbol_event(symbol: str) -> Event:
    """Tell a symbol's subscribers that every source says it does not exist."""
    data = {"code": "unknown_symbol", "message": f"{symbol} is not known to any market data source", "symbol": symbol}
    return _event(asset_group(symbol), "error", data)


def notification_event(user_id: int, payload: Notification) -> Event:
    return _event(user_group(user_id), "notification", payload)


def custom_event(group: str, message: dict[str, Any]) -> Event:
    """A `{"type", "data"}` message for a group (the ConnectionManager.broadcast_* helpers)."""
    return {
        "group": group,
        "type": str(message["type"]),
        "data": to_wire(dict(message.get("data") or {})),
        "timestamp": str(message.get("timestamp") or _now()),
    }


def batch_message(events: list[Event]) -> dict[str, Any]:
    """The ONE layer message a batch becomes: every Daphne process's hub receives it and
    fans it out to its own subscribers (consumers/hub.py)."""
    return {"type": BATCH_MESSAGE_TYPE, "events": [dict(e) for e in events]}


async def _close_this_loops_pools(layer: Any) -> None:
    """The loop async_to_sync made for this call ends with it: close its Redis connections in
    it. Only this loop's: `close_pools()` would close every loop's pools, and in a Daphne
    process (a sync view publishing) that includes the running consumers'. Both channels-redis
    layers keep their per-loop connections in `_layers[loop]` with a `flush()`."""
    loop_layer = getattr(layer, "_layers", {}).pop(asyncio.get_running_loop(), None)
    if loop_layer is not None:
        await loop_layer.flush()


async def _send(events: list[Event], *, close_pools: bool) -> int:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    try:
        # One layer message per batch; a huge batch (thousands of portfolio updates) goes as
        # a few messages so no single Redis value grows without bound.
        for start in range(0, len(events), MAX_EVENTS_PER_MESSAGE):
            await layer.group_send(BROADCAST_GROUP, batch_message(events[start : start + MAX_EVENTS_PER_MESSAGE]))
    finally:
        if close_pools:
            await _close_this_loops_pools(layer)
    return len(events)


def publish_batch(events: Iterable[Event]) -> int:
    """Publish every event of one batch in one layer message; returns the number of events."""
    batch = list(events)
    if not batch:
        return 0
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        sent = int(async_to_sync(_send)(batch, close_pools=True))
        counter_add("messages_published", sent)
        return sent
    raise RuntimeError("publish_batch is for sync code; await publish_batch_async from async code")


async def publish_batch_async(events: Iterable[Event]) -> int:
    """The same from async code running in a long-lived loop (the layer's pools stay open)."""
    batch = list(events)
    if not batch:
        return 0
    return await _send(batch, close_pools=False)
