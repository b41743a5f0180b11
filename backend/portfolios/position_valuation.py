"""Each position's figures in its portfolio's base currency (docs/protocol.md, "Currencies"):
`current_value = quantity * price * fx`, `daily_change = quantity * (price * fx -
previous_close * fx_previous)`, its cost basis, and its return with its realized gain and
dividends. The one derivation of both revaluation passes and of the API's reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import NamedTuple

from django.db.models import F, QuerySet

from backend.portfolios.models import Position

from .rates import pair_prices_valued, rates_latest
from .valuation import (
    DERIVED_CONTEXT,
    HUNDRED,
    PREVIOUS_CLOSE_OF,
    PRICE_OF,
    ZERO,
    previous_price_annotations,
    ratio_percent,
)


class PositionValuation(NamedTuple):
    """One position's figures (a full refresh builds 100,000s of them: a tuple costs
    nothing to build). Money in the base currency, prices in the asset's."""

    position_id: int
    portfolio_id: int
    symbol: str
    quantity: Decimal
    average_cost: Decimal  # asset currency
    last_valued_price: Decimal | None  # the price of its previous valuation (None: none)
    current_price: Decimal | None  # None: no quote yet
    current_value: Decimal | None  # None: no quote or no rate yet (left out of the totals)
    daily_change: Decimal | None
    cost: Decimal  # cost basis
    currency: str = "USD"  # the asset's
    fx_rate: Decimal | None = None  # base per unit of `currency` now (None: no rate yet)
    last_fx: Decimal | None = None  # the rate of its previous valuation
    realized_gain: Decimal = ZERO
    dividends: Decimal = ZERO

    @property
    def priced(self) -> bool:
        return self.current_value is not None

    @property
    def total_return(self) -> Decimal | None:
        if self.current_value is None:
            return None
        add = DERIVED_CONTEXT.add
        return add(DERIVED_CONTEXT.subtract(self.current_value, self.cost), add(self.realized_gain, self.dividends))

    @property
    def total_return_percent(self) -> Decimal | None:
        total_return = self.total_return
        return None if total_return is None else ratio_percent(total_return, self.cost)

    @property
    def price_moved(self) -> bool:
        """Priced at a price or a rate other than those of its previous valuation."""
        return self.priced and (self.current_price != self.last_valued_price or self.fx_rate != self.last_fx)

    @property
    def significant_change(self) -> bool:
        """Its price in the base currency moved more than 1 % from its previous valuation's."""
        if self.current_price is None or self.fx_rate is None or not self.last_valued_price or not self.last_fx:
            return False
        now = DERIVED_CONTEXT.multiply(self.current_price, self.fx_rate)
        before = DERIVED_CONTEXT.multiply(self.last_valued_price, self.last_fx)
        return abs(now - before) * HUNDRED > before


def position_valuation_derive(
    *,
    position_id: int,
    portfolio_id: int,
    symbol: str,
    quantity: Decimal,
    average_cost: Decimal,
    cost: Decimal | None,
    last_valued_price: Decimal | None,
    price: Decimal | None,
    previous_close: Decimal | None,
    currency: str = "USD",
    fx: Decimal | None = Decimal(1),
    fx_previous: Decimal | None = None,
    last_fx: Decimal | None = None,
    realized_gain: Decimal = ZERO,
    dividends: Decimal = ZERO,
) -> PositionValuation:
    """A position's figures from its columns, exact (quantity 28 digits, price 20, a rate 24:
    well inside DERIVED_CONTEXT's 80). No price or no rate: no value and no change. `cost`
    None: a position outside the ledger, quantity * average_cost."""
    multiply, subtract = DERIVED_CONTEXT.multiply, DERIVED_CONTEXT.subtract
    value = change = None
    if price is not None and fx is not None:
        unit = multiply(price, fx)
        previous = previous_close if previous_close is not None else price  # none: no change today
        before = multiply(previous, fx_previous if fx_previous is not None else fx)
        value = multiply(quantity, unit)
        change = multiply(quantity, subtract(unit, before))
    return PositionValuation(
        position_id,
        portfolio_id,
        symbol,
        quantity,
        average_cost,
        last_valued_price,
        price,
        value,
        change,
        multiply(quantity, average_cost) if cost is None else cost,
        currency,
        fx,
        last_fx,
        realized_gain,
        dividends,
    )


def position_valuations(*, positions: QuerySet[Position], moved_only: bool = False) -> list[PositionValuation]:
    """Each position's figures: its columns and prices in one query, the rates of its
    currency now and in its portfolio's previous valuation, the products by
    position_valuation_derive. `moved_only`: just the open positions priced at a price or a
    rate other than those of their previous valuation."""
    queryset = positions.annotate(**previous_price_annotations()).annotate(
        v_price=PRICE_OF, v_previous=PREVIOUS_CLOSE_OF, v_epoch_id=F("portfolio__valued_epoch")
    )
    if moved_only:
        queryset = queryset.filter(quantity__gt=0, v_price__isnull=False)
    rows = list(
        queryset.values_list(
            "pk",
            "portfolio_id",
            "asset__symbol",
            "quantity",
            "average_cost",
            "cost_basis",
            "realized_gain",
            "dividends",
            "asset__currency",
            "portfolio__base_currency",
            "valued",
            "v_epoch_id",
            "v_last",
            "v_price",
            "v_previous",
        ).order_by("portfolio_id", "asset__symbol")
    )
    rates = rates_latest((row[8], row[9]) for row in rows)
    valued_pairs = pair_prices_valued(
        epochs={row[11] for row in rows if row[10] and row[11] is not None},
        pairs={rate.pair for rate in rates.values() if rate is not None and rate.pair is not None},
    )
    result: list[PositionValuation] = []
    for pk, portfolio_id, symbol, quantity, average_cost, cost, realized, dividends, currency, base, *rest in rows:
        valued, epoch, last, price, previous_close = rest
        rate = rates[(currency, base)]
        last_fx = None
        if valued and rate is not None:
            if rate.pair is None:
                last_fx = rate.factor
            elif (pair_price := valued_pairs.get((epoch, rate.pair))) is not None:
                last_fx = DERIVED_CONTEXT.multiply(pair_price, rate.factor)
        position = position_valuation_derive(
            position_id=pk,
            portfolio_id=portfolio_id,
            symbol=symbol,
            quantity=quantity,
            average_cost=average_cost,
            cost=cost,
            last_valued_price=last,
            price=price,
            previous_close=previous_close,
            currency=currency,
            fx=None if rate is None else rate.fx,
            fx_previous=None if rate is None else rate.fx_previous,
            last_fx=last_fx,
            realized_gain=realized,
            dividends=dividends,
        )
        if not moved_only or position.price_moved:
            result.append(position)
    return result


def by_portfolio(positions: Iterable[PositionValuation]) -> dict[int, list[PositionValuation]]:
    """These positions, listed per portfolio id (in their order)."""
    listed: dict[int, list[PositionValuation]] = {}
    for position in positions:
        listed.setdefault(position.portfolio_id, []).append(position)
    return listed
