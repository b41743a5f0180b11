"""The PortfolioTracker interface for scripts, on top of the revaluation service.

`update_portfolio_values` revalues a portfolio at the prices handed in (the latest quotes for
every other symbol) and stores it like any revaluation (cached figures, snapshot, the prices
of this revaluation), without publishing: the script broadcasts the returned payload itself
when `value_changed`. The figures returned are the stored ones; `to_wire` rounds them if sent.

The prices handed in exist only here: inside the tracker's own transaction they replace the
latest quotes of their assets (an asset with no quote gets one, with no previous close: no
change today), and the quotes are put back before it commits, so no other transaction ever
sees them. Like every quote, they must be positive and are kept to 6 places.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal

from django.db import transaction

from backend.market.models import Asset, Quote
from backend.market.symbols import symbol_normalize
from backend.portfolios.models import Portfolio, Position
from backend.portfolios.payloads import portfolio_update_payload, position_update_payload
from backend.portfolios.position_valuation import position_valuations
from backend.portfolios.services.revaluation import Audience, RevalueResult, portfolios_revalue
from backend.portfolios.valuation import FIGURE_FIELDS, LEDGER_FIELDS, Figures, Ledger, PortfolioValuation
from backend.realtime.payloads import PortfolioUpdate, PositionUpdate

# The source of a quote that exists only inside a tracker's transaction.
OVERRIDE_SOURCE = "tracker"


@contextmanager
def _quoted_at(price_updates: Mapping[str, Decimal | int | str]) -> Iterator[None]:
    """A transaction in which these symbols' assets are quoted at these prices (unknown
    symbols are ignored); their quotes are locked, and put back as they were at its end."""
    prices = {symbol_normalize(symbol): Decimal(str(price)) for symbol, price in price_updates.items()}
    with transaction.atomic():
        assets = dict(Asset.objects.filter(symbol__in=list(prices)).values_list("pk", "symbol"))
        quoted = dict(
            Quote.objects.select_for_update().filter(asset_id__in=list(assets)).values_list("asset_id", "price")
        )
        now = datetime.now(UTC)
        for asset_id, symbol in assets.items():
            if asset_id in quoted:
                Quote.objects.filter(asset_id=asset_id).update(price=prices[symbol])
            else:
                Quote.objects.create(
                    asset_id=asset_id, price=prices[symbol], source=OVERRIDE_SOURCE, quoted_at=now, fetched_at=now
                )
        yield
        for asset_id, price in quoted.items():
            Quote.objects.filter(asset_id=asset_id).update(price=price)
        Quote.objects.filter(asset_id__in=[pk for pk in assets if pk not in quoted]).delete()


def _revalued(portfolio_id: int) -> RevalueResult:
    return portfolios_revalue(portfolio_ids=[portfolio_id], audience=Audience.EVERYONE)


def _stored_valuation(portfolio: Portfolio) -> PortfolioValuation:
    row = (
        Portfolio.objects.filter(pk=portfolio.pk)
        .values_list("owner_id", "name", "base_currency", *LEDGER_FIELDS, *FIGURE_FIELDS)
        .get()
    )
    owner_id, name, currency, *columns = row
    positions = Position.objects.filter(portfolio_id=portfolio.pk, quantity__gt=0).count()
    return PortfolioValuation(
        portfolio_id=portfolio.pk,
        owner_id=owner_id,
        name=name,
        figures=Figures(*columns[len(LEDGER_FIELDS) :]),
        positions=positions,
        unpriced=0,
        currency=currency,
        ledger=Ledger(*columns[: len(LEDGER_FIELDS)]),
    )


def update_portfolio_values(portfolio: Portfolio, price_updates: Mapping[str, Decimal | int | str]) -> PortfolioUpdate:
    """The portfolio's `portfolio_update` at these prices: total_value, daily_change,
    daily_change_percent, value_changed, ... and the positions whose price moved."""
    with _quoted_at(price_updates):
        result = _revalued(portfolio.pk)
        stored = _stored_valuation(portfolio)
        valued_at = Portfolio.objects.values_list("valued_at", flat=True).get(pk=portfolio.pk)
    revalued = next((r for r in result.revalued if r.valuation.portfolio_id == portfolio.pk), None)
    return portfolio_update_payload(
        stored,
        revalued.positions if revalued else [],
        value_changed=revalued is not None and revalued.value_changed,
        valued_at=valued_at,
    )


def update_position_value(position: Position, new_price: Decimal | int | str) -> PositionUpdate:
    """The position's `position_update` at `new_price` (its portfolio is revalued with it):
    current_price, current_value, daily_change, total_return, total_return_percent and
    significant_change (moved more than 1 % from the price of its previous revaluation)."""
    with _quoted_at({position.asset.symbol: new_price}):
        result = _revalued(position.portfolio_id)
        moved = [p for r in result.revalued for p in r.positions if p.position_id == position.pk]
        # Already revalued at this price: nothing moved, so nothing significant.
        (valuation,) = moved or position_valuations(positions=Position.objects.filter(pk=position.pk))
    return position_update_payload(valuation)


class PortfolioTracker:
    """The object interface: `tracker.update_portfolio_values(portfolio, prices)`."""

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
