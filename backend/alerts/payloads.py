"""The `notification` payload of a firing (docs/protocol.md, "Alerts"), the same whether it is
pushed when the alert fires or listed later over REST, and its human message."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict

from backend.core.clock import iso_z

from .models import Alert

KIND = "price_alert"


class PriceAlertPayload(TypedDict):
    kind: str
    alert_id: int
    event_id: int
    symbol: str
    condition: str
    threshold: float
    price: float
    triggered_at: str
    message: str


def _plain(value: Decimal) -> str:
    """200.500000 -> "200.5", 200.000000 -> "200"; never exponent notation."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _percent(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):+f} %"


def alert_message(
    *, symbol: str, condition: str, threshold: Decimal, price: Decimal, change_percent: Decimal | None
) -> str:
    if condition == Alert.Condition.ABOVE:
        return f"{symbol} is at {_plain(price)}, at or above your alert at {_plain(threshold)}"
    if condition == Alert.Condition.BELOW:
        return f"{symbol} is at {_plain(price)}, at or below your alert at {_plain(threshold)}"
    moved = "?" if change_percent is None else _percent(change_percent)
    side = "above" if condition == Alert.Condition.CHANGE_PERCENT_ABOVE else "below"
    return f"{symbol} moved {moved} today (at {_plain(price)}), at or {side} your alert at {_plain(threshold)} %"


def notification_payload(
    *,
    event_id: int,
    alert_id: int,
    symbol: str,
    condition: str,
    threshold: Decimal,
    price: Decimal,
    change_percent: Decimal | None,
    triggered_at: datetime,
) -> PriceAlertPayload:
    """Prices and thresholds go out as stored (JSON numbers, not rounded to cents)."""
    return {
        "kind": KIND,
        "alert_id": alert_id,
        "event_id": event_id,
        "symbol": symbol,
        "condition": condition,
        "threshold": float(threshold),
        "price": float(price),
        "triggered_at": iso_z(triggered_at),
        "message": alert_message(
            symbol=symbol, condition=condition, threshold=threshold, price=price, change_percent=change_percent
        ),
    }


def alert_body(alert: Alert, *, symbol: str, last_triggered_at: datetime | None) -> dict[str, Any]:
    """An alert as the REST API shows it."""
    return {
        "id": alert.pk,
        "symbol": symbol,
        "condition": alert.condition,
        "threshold": float(alert.threshold),
        "repeat": alert.repeat,
        "active": alert.active,
        "armed": alert.armed,
        "created_at": iso_z(alert.created_at),
        "last_triggered_at": iso_z(last_triggered_at),
    }
