"""Seed 002's PortfolioTracker interface for scripts, on top of the valuation service.

`update_portfolio_values` values a portfolio at the prices handed in (the latest quotes for
every other symbol) and stores it like a recalculation (cached figures, snapshot, the prices
of this valuation), without publishing: the seed's caller broadcasts the returned payload
itself when `value_changed`. The figures returned are the stored ones; `to_wire` rounds
them if sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from backend.market.symbols import symbol_normalize
from backend.portfolios.models import Portfolio, Position
from backend.portfolios.services.payloads import portfolio_update_payload, position_update_payload
from backend.portfolios.services.revaluation import FIGURE_FIELDS, Audience, portfolios_revalue
from backend.portfolios.services.valuation import Figures, PortfolioValuation, group_by_portfolio, positions_value
from backend.realtime.payloads import PortfolioUpdate, PositionUpdate


def _prices(price_updates: Mapping[str, Decimal | int | str]) -> dict[str, Decimal]:
    return {symbol_normalize(symbol): Decimal(str(price)) for symbol, price in price_updates.items()}


def _stored_valuation(portfolio: Portfolio) -> PortfolioValuation:
    row = Portfolio.objects.filter(pk=portfolio.pk).values_list("owner_id", "name", *FIGURE_FIELDS).get()
    owner_id, name, *figures = row
    positions = Position.objects.filter(portfolio_id=portfolio.pk).count()
    return PortfolioValuation(
        portfolio_id=portfolio.pk,
        owner_id=owner_id,
        name=name,
        figures=Figures(*figures),
        positions=positions,
        unpriced=0,
    )


def update_portfolio_values(portfolio: Portfolio, price_updates: Mapping[str, Decimal | int | str]) -> PortfolioUpdate:
    """The portfolio's `portfolio_update` at these prices: total_value, daily_change,
    daily_change_percent, value_changed, ... and the positions whose price moved."""
    result = portfolios_revalue(
        portfolio_ids=[portfolio.pk],
        price_overrides=_prices(price_updates),
        publish=False,
        audience=Audience.EVERYONE,
    )
    moved = group_by_portfolio(result.moved_positions).get(portfolio.pk, [])
    return portfolio_update_payload(
        _stored_valuation(portfolio),
        moved,
        value_changed=portfolio.pk in result.value_changed_ids,
        valued_at=Portfolio.objects.values_list("valued_at", flat=True).get(pk=portfolio.pk),
    )


def update_position_value(position: Position, new_price: Decimal | int | str) -> PositionUpdate:
    """The position's `position_update` at `new_price` (its portfolio is revalued with it):
    current_price, current_value, daily_change, total_return, total_return_percent and
    significant_change (moved more than 1 % from the price of its previous valuation)."""
    prices = _prices({position.asset.symbol: new_price})
    result = portfolios_revalue(
        portfolio_ids=[position.portfolio_id], price_overrides=prices, publish=False, audience=Audience.EVERYONE
    )
    for moved in result.moved_positions:
        if moved.position_id == position.pk:
            return position_update_payload(moved)
    # Already valued at this price: nothing moved, so nothing significant.
    (unmoved,) = positions_value(positions=Position.objects.filter(pk=position.pk), price_overrides=prices)
    return position_update_payload(unmoved)


class PortfolioTracker:
    """The seed's object interface: `tracker.update_portfolio_values(portfolio, prices)`."""

    def __init__(self) -> None:
        self.tracked: set[int] = set()

    def start_tracking_portfolio(self, portfolio: Portfolio) -> None:
        self.tracked.add(portfolio.pk)

    def stop_tracking_portfolio(self, portfolio: Portfolio) -> None:
        self.tracked.discard(portfolio.pk)

    def update_portfolio_values(
        self, portfolio: Portfolio, price_updates: Mapping[str, Decimal | int | str]
    ) -> PortfolioUpdate:
        return update_portfolio_values(portfolio, price_updates)

    def update_position_value(self, position: Position, new_price: Decimal | int | str) -> PositionUpdate:
        return update_position_value(position, new_price)
