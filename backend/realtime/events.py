"""Events: what a service hands back for its task to publish. Each names the channel-layer
group whose subscribers get it, the message type of the protocol and its payload, stamped
with the time it was built. Payloads are rounded for the wire here, once."""

from __future__ import annotations

from typing import Any, TypedDict

from backend.core.clock import utc_now_iso

from .groups import BATCH_MESSAGE_TYPE, asset_group, portfolio_group, user_group
from .payloads import AssetUpdate, Notification, PortfolioUpdate, PositionUpdate, to_wire


class Event(TypedDict):
    group: str
    type: str
    data: dict[str, Any]
    timestamp: str


def _event(group: str, kind: str, data: Any) -> Event:
    return {"group": group, "type": kind, "data": to_wire(dict(data)), "timestamp": utc_now_iso()}


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


def batch_message(events: list[Event]) -> dict[str, Any]:
    """The ONE layer message a batch becomes: every Daphne process's hub receives it and
    fans it out to its own subscribers."""
    return {"type": BATCH_MESSAGE_TYPE, "events": [dict(e) for e in events]}
