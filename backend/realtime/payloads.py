"""The shapes of what the server pushes (docs/protocol.md, "Pushed events"). Money is Decimal until the
edge: `to_wire` rounds half-even to cents and turns numbers into JSON numbers."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, NotRequired, TypedDict

CENT = Decimal("0.01")


class AssetUpdate(TypedDict):
    symbol: str
    price: Decimal
    change: Decimal | None
    change_percent: Decimal | None
    volume: int | None
    high: Decimal | None
    low: Decimal | None
    market_cap: int | None
    previous_close: Decimal | None
    last_updated: str
    source: str


class PositionSummary(TypedDict):
    symbol: str
    quantity: Decimal
    current_price: Decimal | None  # the asset's currency
    current_value: Decimal | None  # the portfolio's base currency, as daily_change
    daily_change: Decimal | None


class PortfolioUpdate(TypedDict):
    portfolio_id: int
    name: str
    total_value: Decimal
    total_cost: Decimal
    daily_change: Decimal
    daily_change_percent: Decimal
    total_return: Decimal
    total_return_percent: Decimal
    value_changed: bool
    valued_at: str | None
    positions_updated: list[PositionSummary]
    # Always sent by the server (NotRequired only so that older fixtures still type-check):
    currency: NotRequired[str]  # the base currency every figure is in
    realized_gain: NotRequired[Decimal]
    dividends: NotRequired[Decimal]
    fees: NotRequired[Decimal]
    unpriced_positions: NotRequired[int]


class PositionUpdate(TypedDict):
    portfolio_id: int
    symbol: str
    quantity: Decimal
    current_price: Decimal
    current_value: Decimal
    daily_change: Decimal
    total_return: Decimal
    total_return_percent: Decimal
    significant_change: bool
    # Always sent by the server (NotRequired only so that older fixtures still type-check):
    currency: NotRequired[str]  # the asset's; current_price is in it, the money in the base
    fx_rate: NotRequired[Decimal | None]  # base per unit of `currency`
    cost_basis: NotRequired[Decimal]


class Notification(TypedDict, total=False):
    message: str


# Fields sent as stored (not rounded to cents): prices and rates keep their quoted precision
# and quantities may be fractional (docs/protocol.md, "Valuation").
UNROUNDED = frozenset({"quantity", "price", "current_price", "high", "low", "previous_close", "fx_rate"})


# Values sent as they are: not looked into (a revaluation's events hold 100,000s of them, and
# a call per value was most of the cost of building them).
_PLAIN = frozenset({str, int, float, bool, type(None)})


def to_wire(value: Any, key: str = "") -> Any:
    """Decimal -> JSON number (cents for money and percentages), recursively."""
    if isinstance(value, Decimal):
        if key in UNROUNDED:
            return float(value)
        return float(value.quantize(CENT, rounding=ROUND_HALF_EVEN))
    if isinstance(value, dict):
        return {k: v if type(v) in _PLAIN else to_wire(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [v if type(v) in _PLAIN else to_wire(v, key) for v in value]
    return value
