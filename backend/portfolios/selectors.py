"""Reads of portfolios shaped for clients, with live valuations from the valuation service
(so a client never sees figures older than the latest quotes)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from backend.core.clock import utc_now_iso
from backend.portfolios.models import Portfolio, Position
from backend.portfolios.payloads import portfolio_update_payload
from backend.portfolios.valuation import by_portfolio, portfolio_valuations, position_valuations
from backend.realtime.payloads import PortfolioUpdate


def portfolio_snapshot(*, portfolio_id: int, user_id: int) -> PortfolioUpdate | None:
    """The current valuation of one of the user's portfolios as a `portfolio_update`
    (`value_changed` false: nothing moved, it is a snapshot; every position listed). None
    when the portfolio does not exist or is not the user's: callers answer both the same way."""
    valuations = portfolio_valuations(portfolios=Portfolio.objects.filter(pk=portfolio_id, owner_id=user_id))
    if not valuations:
        return None
    positions = position_valuations(positions=Position.objects.filter(portfolio_id=portfolio_id))
    return portfolio_update_payload(valuations[0], positions, value_changed=False, valued_at=datetime.now(UTC))


def portfolios_read(*, owner_id: int, portfolio_id: int | None = None) -> list[dict[str, Any]]:
    """The owner's portfolios (or one of them) with live figures and every position: three
    queries whatever the number of portfolios. Decimals: the API rounds at the edge."""
    portfolios = Portfolio.objects.filter(owner_id=owner_id)
    if portfolio_id is not None:
        portfolios = portfolios.filter(pk=portfolio_id)
    valuations = portfolio_valuations(portfolios=portfolios)
    positions = by_portfolio(
        position_valuations(positions=Position.objects.filter(portfolio_id__in=[v.portfolio_id for v in valuations]))
    )
    now = utc_now_iso()
    result: list[dict[str, Any]] = []
    for valuation in valuations:
        result.append(
            {
                "id": valuation.portfolio_id,
                "name": valuation.name,
                **asdict(valuation.figures),  # the six figures, as the valuation service names them
                "unpriced_positions": valuation.unpriced,
                "valued_at": now,
                "positions": [
                    {
                        "symbol": p.symbol,
                        "quantity": p.quantity,
                        # A cost is a price: sent as stored, like prices (not cents).
                        "average_cost": float(p.average_cost),
                        "current_price": p.current_price,
                        "current_value": p.current_value,
                        "daily_change": p.daily_change,
                        "total_return": p.total_return,
                        "total_return_percent": p.total_return_percent,
                        "priced": p.priced,
                    }
                    for p in positions.get(valuation.portfolio_id, [])
                ],
            }
        )
    return result


def position_read(*, owner_id: int, portfolio_id: int, symbol: str) -> dict[str, Any] | None:
    for portfolio in portfolios_read(owner_id=owner_id, portfolio_id=portfolio_id):
        for position in portfolio["positions"]:
            if position["symbol"] == symbol:
                return dict(position)
    return None
