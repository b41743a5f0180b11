"""Portfolio figures shaped as the pushed events, still Decimal:
`backend.realtime.payloads.to_wire` rounds them when they leave."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from backend.core.clock import iso_z
from backend.realtime.payloads import PortfolioUpdate, PositionSummary, PositionUpdate

from .position_valuation import PositionValuation
from .valuation import PortfolioValuation


def position_summary(position: PositionValuation) -> PositionSummary:
    return {
        "symbol": position.symbol,
        "quantity": position.quantity,
        "current_price": position.current_price,
        "current_value": position.current_value,
        "daily_change": position.daily_change,
    }


def position_update_payload(position: PositionValuation) -> PositionUpdate:
    """The `position_update` of a priced position."""
    assert position.current_price is not None
    assert position.current_value is not None
    return {
        "portfolio_id": position.portfolio_id,
        "symbol": position.symbol,
        "quantity": position.quantity,
        "current_price": position.current_price,
        "current_value": position.current_value,
        "daily_change": position.daily_change if position.daily_change is not None else Decimal(0),
        "total_return": position.total_return or Decimal(0),
        "total_return_percent": position.total_return_percent or Decimal(0),
        "significant_change": position.significant_change,
        "currency": position.currency,
        "fx_rate": position.fx_rate,
        "cost_basis": position.cost,
    }


def portfolio_update_payload(
    valuation: PortfolioValuation,
    positions: Sequence[PositionValuation],
    *,
    value_changed: bool,
    valued_at: datetime | None,
) -> PortfolioUpdate:
    figures = valuation.figures
    return {
        "portfolio_id": valuation.portfolio_id,
        "name": valuation.name,
        "total_value": figures.total_value,
        "total_cost": figures.total_cost,
        "daily_change": figures.daily_change,
        "daily_change_percent": figures.daily_change_percent,
        "total_return": figures.total_return,
        "total_return_percent": figures.total_return_percent,
        "value_changed": value_changed,
        "valued_at": iso_z(valued_at),
        "positions_updated": [position_summary(p) for p in positions],
        "currency": valuation.currency,
        "realized_gain": valuation.ledger.realized_gain,
        "dividends": valuation.ledger.dividends,
        "fees": valuation.ledger.fees,
        "unpriced_positions": valuation.unpriced,
    }
