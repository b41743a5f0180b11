"""Portfolio valuation: positions joined with their asset's latest quote, summed by ONE SQL
aggregation for any number of portfolios. The live reads (selectors) and the ORM revaluation
pass use it; the PostgreSQL revaluation pass derives the same figures in its statement.

Exactness: on PostgreSQL every product and sum is NUMERIC arithmetic, so the sums come back
as exact Decimals (quantity has 10 places, prices 6: each product has at most 16). The
derived figures (percentages, return) are computed from those sums with Python Decimal at
60 digits. SQLite has no decimal type: it stores and multiplies REAL (binary floats), and
Django reads an expression back to 15 significant digits; figures are right to the cent up
to about 10^12 but not exact beyond that. PostgreSQL is the production and CI database.

A position whose asset has no quote yet is left out of every total (value, daily change and
cost alike, so its cost does not look like a loss) and counted in `unpriced`.
"""

from __future__ import annotations

import decimal
from collections.abc import Collection, Iterable
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, NamedTuple

from django.db.models import (
    Case,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    FilteredRelation,
    Q,
    QuerySet,
    Sum,
    When,
)
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce

from backend.portfolios.models import Portfolio, Position

from .sql import AnyOf

ZERO = Decimal(0)
HUNDRED = Decimal(100)
# Wide enough for any sum of products of the model's fields, so SQL never truncates.
EXACT = DecimalField(max_digits=65, decimal_places=16)
PRICE = DecimalField(max_digits=20, decimal_places=6)
# Derived figures: enough digits that subtracting two 30-digit sums is never rounded.
DERIVED_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Figures:
    total_value: Decimal
    total_cost: Decimal
    daily_change: Decimal
    daily_change_percent: Decimal
    total_return: Decimal
    total_return_percent: Decimal


# The portfolio columns caching them, in this order.
FIGURE_FIELDS = tuple(f.name for f in fields(Figures))


@dataclass(frozen=True)
class PortfolioValuation:
    portfolio_id: int
    owner_id: int
    name: str
    figures: Figures
    positions: int
    unpriced: int  # positions with no quote yet: left out of the totals


def _ratio_percent(numerator: Decimal, divisor: Decimal) -> Decimal:
    """numerator / divisor * 100, and 0 where the divisor is 0."""
    if divisor == 0:
        return ZERO
    return DERIVED_CONTEXT.multiply(DERIVED_CONTEXT.divide(numerator, divisor), HUNDRED)


def figures_derive(*, total_value: Decimal, daily_change: Decimal, total_cost: Decimal) -> Figures:
    """The contract's derived figures from the three sums."""
    total_return = DERIVED_CONTEXT.subtract(total_value, total_cost)
    return Figures(
        total_value=total_value,
        total_cost=total_cost,
        daily_change=daily_change,
        daily_change_percent=_ratio_percent(daily_change, DERIVED_CONTEXT.subtract(total_value, daily_change)),
        total_return=total_return,
        total_return_percent=_ratio_percent(total_return, total_cost),
    )


# A position's price: its asset's latest quote.
PRICE_OF = F("quote__price")
# Its previous close; none means no change today: the price itself.
PREVIOUS_CLOSE_OF = Coalesce(F("quote__previous_close"), PRICE_OF, output_field=PRICE)
# Positions that have a price.
PRICED = Q(quote__price__isnull=False)


def previous_price_annotations() -> dict[str, Any]:
    """`v_last`: a position's price in its portfolio's previous valuation, i.e. its asset's
    price in the portfolio's valuation epoch if the position took part in it (models.py).
    A join on (asset, epoch), not a subquery per row."""
    return {
        "v_epoch": FilteredRelation(
            "asset__valued_prices", condition=Q(asset__valued_prices__epoch_id=F("portfolio__valued_epoch"))
        ),
        "v_last": Case(When(valued=True, then=F("v_epoch__price")), default=None, output_field=PRICE),
    }


class _Product(ExpressionWrapper):
    """A NUMERIC product. The database driver already returns it as Decimal (SQLite's
    backend converter makes one from its float), so Django's own per-row `Decimal(value)`
    copy is skipped: a full refresh reads 200,000 rows of these."""

    @property
    def convert_value(self) -> Any:
        return self._convert_value_noop  # type: ignore[attr-defined]


def _product(left: Combinable, right: Combinable) -> ExpressionWrapper:
    return _Product(left * right, output_field=EXACT)


@dataclass(frozen=True)
class Sums:
    total_value: Decimal
    daily_change: Decimal
    total_cost: Decimal
    positions: int
    priced: int


NO_POSITIONS = Sums(ZERO, ZERO, ZERO, 0, 0)


def portfolio_sums(*, portfolio_ids: Collection[int]) -> dict[int, Sums]:
    """THE valuation query: positions LEFT JOIN their quote, GROUP BY portfolio, summing the
    products in SQL. One query for any number of portfolios; portfolios without positions
    are absent (see NO_POSITIONS)."""
    quantity = F("quantity")
    rows = (
        Position.objects.filter(AnyOf("portfolio_id", portfolio_ids))
        .order_by()
        .values("portfolio_id")
        .annotate(
            # SUM skips NULLs: an unpriced position's products are NULL, no FILTER needed.
            v_value=Sum(_product(quantity, PRICE_OF)),
            v_change=Sum(_product(quantity, PRICE_OF - PREVIOUS_CLOSE_OF)),
            v_cost=Sum(_product(quantity, F("average_cost")), filter=PRICED),
            v_positions=Count("pk"),
            v_priced=Count(PRICE_OF),
        )
        .values_list("portfolio_id", "v_value", "v_change", "v_cost", "v_positions", "v_priced")
    )
    return {
        portfolio_id: Sums(_decimal(value), _decimal(change), _decimal(cost), positions, priced_count)
        for portfolio_id, value, change, cost, positions, priced_count in rows
    }


def valuation_from_sums(*, portfolio_id: int, owner_id: int, name: str, sums: Sums) -> PortfolioValuation:
    return PortfolioValuation(
        portfolio_id=portfolio_id,
        owner_id=owner_id,
        name=name,
        figures=figures_derive(
            total_value=sums.total_value, daily_change=sums.daily_change, total_cost=sums.total_cost
        ),
        positions=sums.positions,
        unpriced=sums.positions - sums.priced,
    )


def portfolio_valuations(*, portfolios: QuerySet[Portfolio]) -> list[PortfolioValuation]:
    """The valuation of every portfolio of the queryset at the latest quotes: its rows
    (1 query) + portfolio_sums (1 query). Portfolios with no positions come back with zeros."""
    heads = list(portfolios.order_by("pk").values_list("pk", "owner_id", "name"))
    sums = portfolio_sums(portfolio_ids=[pk for pk, _, _ in heads])
    return [
        valuation_from_sums(portfolio_id=pk, owner_id=owner_id, name=name, sums=sums.get(pk, NO_POSITIONS))
        for pk, owner_id, name in heads
    ]


def _decimal(value: object) -> Decimal:
    """A SQL sum as Decimal: NULL (nothing priced) is 0. On PostgreSQL it already is one."""
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        return value
    return decimal.Context(prec=15).create_decimal_from_float(float(value))  # type: ignore[arg-type]


class PositionValuation(NamedTuple):
    """One row of the positions query, as is (a full refresh reads 100,000s of them: a
    tuple costs nothing to build). Both backends already return Decimals here."""

    position_id: int
    portfolio_id: int
    symbol: str
    quantity: Decimal
    average_cost: Decimal
    last_valued_price: Decimal | None
    current_price: Decimal | None  # None: no quote yet (left out of the totals)
    current_value: Decimal | None
    daily_change: Decimal | None
    cost: Decimal

    @property
    def priced(self) -> bool:
        return self.current_price is not None

    @property
    def total_return(self) -> Decimal | None:
        if self.current_value is None:
            return None
        return DERIVED_CONTEXT.subtract(self.current_value, self.cost)

    @property
    def total_return_percent(self) -> Decimal | None:
        total_return = self.total_return
        return None if total_return is None else _ratio_percent(total_return, self.cost)

    @property
    def price_moved(self) -> bool:
        """Priced at something other than the price of its previous valuation."""
        return self.current_price is not None and self.current_price != self.last_valued_price

    @property
    def significant_change(self) -> bool:
        """The price moved more than 1 % from the price used in the previous valuation."""
        if self.current_price is None or not self.last_valued_price:
            return False
        return abs(self.current_price - self.last_valued_price) * HUNDRED > self.last_valued_price


def position_valuation_derive(
    *,
    position_id: int,
    portfolio_id: int,
    symbol: str,
    quantity: Decimal,
    average_cost: Decimal,
    last_valued_price: Decimal | None,
    price: Decimal | None,
    previous_close: Decimal | None,
) -> PositionValuation:
    """A position's figures from its columns (no price: no value and no change), exact: the
    products have at most 48 digits (quantity 28, a price 20), well inside DERIVED_CONTEXT's
    60. The one derivation of both passes and of the API's reads."""
    multiply = DERIVED_CONTEXT.multiply
    value = change = None
    if price is not None:
        value = multiply(quantity, price)
        previous = previous_close if previous_close is not None else price  # none: no change today
        change = multiply(quantity, DERIVED_CONTEXT.subtract(price, previous))
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
        multiply(quantity, average_cost),
    )


def position_valuations(*, positions: QuerySet[Position], moved_only: bool = False) -> list[PositionValuation]:
    """Each position's figures: its columns and prices in one query, the products by
    position_valuation_derive. `moved_only`: just the positions priced at something other
    than the price of their previous valuation (previous_price_annotations)."""
    queryset = positions.annotate(**previous_price_annotations()).annotate(
        v_price=PRICE_OF, v_previous=PREVIOUS_CLOSE_OF
    )
    if moved_only:
        queryset = queryset.filter(v_price__isnull=False).filter(Q(v_last__isnull=True) | ~Q(v_last=F("v_price")))
    rows = queryset.values_list(
        "pk",
        "portfolio_id",
        "asset__symbol",
        "quantity",
        "average_cost",
        "v_last",
        "v_price",
        "v_previous",
    ).order_by("portfolio_id", "asset__symbol")
    return [
        position_valuation_derive(
            position_id=pk,
            portfolio_id=portfolio_id,
            symbol=symbol,
            quantity=quantity,
            average_cost=average_cost,
            last_valued_price=last,
            price=current,
            previous_close=previous_close,
        )
        for pk, portfolio_id, symbol, quantity, average_cost, last, current, previous_close in rows
    ]


def by_portfolio(positions: Iterable[PositionValuation]) -> dict[int, list[PositionValuation]]:
    """These positions, listed per portfolio id (in their order)."""
    listed: dict[int, list[PositionValuation]] = {}
    for position in positions:
        listed.setdefault(position.portfolio_id, []).append(position)
    return listed
