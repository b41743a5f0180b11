"""The /ws/realtime/ messages as TypedDicts (docs/protocol.md): what the JSON decodes to.

`Message` is a union tagged by `type`, so a type checker narrows it:

    if message["type"] == "asset_update":
        message["data"]["price"]  # float

Numbers arrive as JSON numbers (money rounded to cents by the server). A message type added
to the protocol later is delivered as it came, outside this union.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NotRequired, TypedDict, cast

# --- payloads (`data`) -----------------------------------------------------------------


class ConnectionData(TypedDict):
    status: str
    connection_id: str
    authenticated: bool
    user_id: int


class AssetUpdate(TypedDict):
    symbol: str
    price: float
    change: float | None
    change_percent: float | None
    volume: int | None
    high: float | None
    low: float | None
    market_cap: int | None
    previous_close: float | None
    last_updated: str
    source: str


class PositionSummary(TypedDict):
    symbol: str
    quantity: float
    current_price: float | None
    current_value: float | None
    daily_change: float | None


class PortfolioUpdate(TypedDict):
    portfolio_id: int
    name: str
    total_value: float
    total_cost: float
    daily_change: float
    daily_change_percent: float
    total_return: float
    total_return_percent: float
    value_changed: bool
    valued_at: str | None
    positions_updated: list[PositionSummary]
    currency: NotRequired[str]
    realized_gain: NotRequired[float]
    dividends: NotRequired[float]
    fees: NotRequired[float]
    unpriced_positions: NotRequired[int]


class PositionUpdate(TypedDict):
    portfolio_id: int
    symbol: str
    quantity: float
    current_price: float
    current_value: float
    daily_change: float
    total_return: float
    total_return_percent: float
    significant_change: bool
    currency: NotRequired[str]
    fx_rate: NotRequired[float | None]
    cost_basis: NotRequired[float]


class Notification(TypedDict):
    message: str
    kind: NotRequired[str]  # "price_alert" for a fired alert, with the fields below
    alert_id: NotRequired[int]
    event_id: NotRequired[int]
    symbol: NotRequired[str]
    condition: NotRequired[str]
    threshold: NotRequired[float]
    price: NotRequired[float]
    triggered_at: NotRequired[str]


class ErrorData(TypedDict):
    code: str  # invalid_json, invalid_message, unknown_type, invalid_symbol, unknown_symbol, not_found, ...
    message: str
    symbol: NotRequired[str]
    portfolio_id: NotRequired[int]


class SubscriptionData(TypedDict):
    channel: Literal["asset", "portfolio"]
    symbol: NotRequired[str]
    portfolio_id: NotRequired[int]


class Empty(TypedDict):
    pass


# --- the envelope ----------------------------------------------------------------------


class Envelope(TypedDict):
    """What every server message carries besides `type` and `data`."""

    timestamp: str
    connection_id: str
    seq: int


class ConnectionMessage(Envelope):
    type: Literal["connection"]
    data: ConnectionData


class AssetUpdateMessage(Envelope):
    type: Literal["asset_update"]
    data: AssetUpdate


class PortfolioUpdateMessage(Envelope):
    type: Literal["portfolio_update"]
    data: PortfolioUpdate


class PositionUpdateMessage(Envelope):
    type: Literal["position_update"]
    data: PositionUpdate


class NotificationMessage(Envelope):
    type: Literal["notification"]
    data: Notification


class ErrorMessage(Envelope):
    type: Literal["error"]
    data: ErrorData


class SubscribedMessage(Envelope):
    type: Literal["subscribed"]
    data: SubscriptionData


class UnsubscribedMessage(Envelope):
    type: Literal["unsubscribed"]
    data: SubscriptionData


class PongMessage(Envelope):
    type: Literal["pong"]
    data: Empty


Message = (
    ConnectionMessage
    | AssetUpdateMessage
    | PortfolioUpdateMessage
    | PositionUpdateMessage
    | NotificationMessage
    | ErrorMessage
    | SubscribedMessage
    | UnsubscribedMessage
    | PongMessage
)

MESSAGE_TYPES = frozenset(
    {
        "connection",
        "asset_update",
        "portfolio_update",
        "position_update",
        "notification",
        "error",
        "subscribed",
        "unsubscribed",
        "pong",
    }
)


class InvalidFrame(ValueError):
    """A server frame that is not a JSON object with a string `type`."""


def parse_message(raw: str | bytes) -> Message:
    """Decodes one server frame. Raises InvalidFrame when it is not a message at all; the
    fields of a well-formed one are not checked (the server is trusted for those)."""
    try:
        value: Any = json.loads(raw)
    except ValueError as error:
        raise InvalidFrame(f"not JSON: {error}") from error
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise InvalidFrame("not a message object with a type")
    if not isinstance(value.get("data"), dict):
        value["data"] = {}
    return cast(Message, value)
