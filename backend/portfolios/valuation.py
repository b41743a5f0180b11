"""Portfolio valuation in the base currency: open positions joined with their asset's latest
quote, summed by ONE SQL aggregation per portfolio and asset currency for any number of
portfolios, each sum converted at its currency's rate (rates.py). The live reads
(selectors) and the ORM revaluation pass use it; the PostgreSQL revaluation pass derives
the same figures in its statement. Positions' own figures: position_valuation.py.

Exactness: on PostgreSQL every product and sum is NUMERIC arithmetic, so the sums come back
as exact Decimals (quantity has 10 places, prices 6: each product has at most 16; times a
rate of at most 8 places, 24). The conversion and the derived figures (percentages,
return) are computed from those sums with Python Decimal at 80 digits. SQLite has no
decimal type: it stores and multiplies REAL (binary floats), and Django reads an expression
back to 15 significant digits; figures are right to the cent up to about 10^12 but not
exact beyond that. PostgreSQL is the production and CI database.

A position whose asset has no quote yet, or whose currency's pair has none, is left out of
every total (value, daily change and cost alike, so its cost does not look like a loss) and
counted in `unpriced`. A position sold down to 0 is in none of them.
"""

from __future__ import annotations

import decimal
from collections.abc import Collection
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

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

from .rates import rates_latest
from .sql import AnyOf

ZERO = Decimal(0)
HUNDRED = Decimal(100)
# Wide enough for any sum of products of the model's fields, so SQL never truncates.
EXACT = DecimalField(max_digits=65, decimal_places=16)
PRICE = DecimalField(max_digits=20, decimal_places=6)
# Derived figures: enough digits that subtracting two 30-digit sums is never rounded.
DERIVED_CONTEXT = decimal.Context(prec=80, rounding=decimal.ROUND_HALF_EVEN)


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
class Ledger:
    """A portfolio's ledger figures in its base currency (derived from its transactions,
    stored on its row by services/ledger.py): they need no price."""

    realized_gain: Decimal = ZERO
    dividends: Decimal = ZERO
    fees: Decimal = ZERO


NO_LEDGER = Ledger()
# The portfolio columns holding them, in this order.
LEDGER_FIELDS = tuple(f.name for f in fields(Ledger))


@dataclass(frozen=True)
class PortfolioValuation:
    portfolio_id: int
    owner_id: int
    name: str
    figures: Figures
    positions: int  # open positions (quantity > 0)
    unpriced: int  # with no quote or no rate yet: left out of the totals
    currency: str = "USD"  # the base currency
    ledger: Ledger = NO_LEDGER


def ratio_percent(numerator: Decimal, divisor: Decimal) -> Decimal:
    """numerator / divisor * 100, and 0 where the divisor is 0."""
    if divisor == 0:
        return ZERO
    return DERIVED_CONTEXT.multiply(DERIVED_CONTEXT.divide(numerator, divisor), HUNDRED)


def figures_derive(
    *, total_value: Decimal, daily_change: Decimal, total_cost: Decimal, ledger: Ledger = NO_LEDGER
) -> Figures:
    """The contract's derived figures from the three sums and the ledger figures:
    total_return = total_value - total_cost + realized_gain + dividends - fees."""
    add, subtract = DERIVED_CONTEXT.add, DERIVED_CONTEXT.subtract
    realized = subtract(add(ledger.realized_gain, ledger.dividends), ledger.fees)
    total_return = add(subtract(total_value, total_cost), realized)
    return Figures(
        total_value=total_value,
        total_cost=total_cost,
        daily_change=daily_change,
        daily_change_percent=ratio_percent(daily_change, subtract(total_value, daily_change)),
        total_return=total_return,
        total_return_percent=ratio_percent(total_return, total_cost),
    )


# A position's price: its asset's latest quote.
PRICE_OF = F("quote__price")
# Its previous close; none means no change today: the price itself.
PREVIOUS_CLOSE_OF = Coalesce(F("quote__previous_close"), PRICE_OF, output_field=PRICE)
# Positions that have a price.
PRICED = Q(quote__price__isnull=False)
# Positions still held: a position sold down to 0 leaves the valuation.
OPEN = Q(quantity__gt=0)


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


# A position's cost basis in the base currency; a position written outside the ledger has
# none: quantity * average_cost (models.Position).
COST_OF = Coalesce(F("cost_basis"), _product(F("quantity"), F("average_cost")), output_field=EXACT)


@dataclass(frozen=True)
class Sums:
    total_value: Decimal
    daily_change: Decimal
    total_cost: Decimal
    positions: int
    priced: int


NO_POSITIONS = Sums(ZERO, ZERO, ZERO, 0, 0)


def portfolio_sums(*, portfolio_ids: Collection[int]) -> dict[int, Sums]:
    """THE valuation query: open positions LEFT JOIN their quote, GROUP BY portfolio and
    asset currency, summing `quantity * price`, `quantity * previous_close` and the cost
    basis in SQL; each group is then converted at its currency's rate into the base
    (`value * fx`, `previous * fx_previous`): a rate per group, not per position, so the
    sums stay exact. One query for any number of portfolios (plus one for the pairs' quotes
    when a currency needs one); portfolios without positions are absent (NO_POSITIONS). A
    group whose pair has no quote yet is left out and counted unpriced."""
    quantity = F("quantity")
    rows = list(
        Position.objects.filter(AnyOf("portfolio_id", portfolio_ids))
        .order_by()
        .values("portfolio_id", "asset__currency", "portfolio__base_currency")
        .annotate(
            # SUM skips NULLs: an unpriced position's products are NULL.
            v_value=Sum(_product(quantity, PRICE_OF), filter=OPEN),
            v_previous=Sum(_product(quantity, PREVIOUS_CLOSE_OF), filter=OPEN),
            v_cost=Sum(COST_OF, filter=PRICED & OPEN),
            v_positions=Count("pk", filter=OPEN),
            v_priced=Count(PRICE_OF, filter=OPEN),
        )
        .values_list(
            "portfolio_id",
            "asset__currency",
            "portfolio__base_currency",
            "v_value",
            "v_previous",
            "v_cost",
            "v_positions",
            "v_priced",
        )
    )
    rates = rates_latest((currency, base) for _, currency, base, *_ in rows)
    add, subtract, multiply = DERIVED_CONTEXT.add, DERIVED_CONTEXT.subtract, DERIVED_CONTEXT.multiply
    sums: dict[int, Sums] = {}
    for pk, currency, base, value, previous, cost, positions, priced in rows:
        acc = sums.get(pk, NO_POSITIONS)
        rate = rates[(currency, base)]
        if rate is None:  # no rate yet: every position of the group is unpriced
            sums[pk] = Sums(acc.total_value, acc.daily_change, acc.total_cost, acc.positions + positions, acc.priced)
            continue
        worth = multiply(_decimal(value), rate.fx)
        change = subtract(worth, multiply(_decimal(previous), rate.fx_previous))
        sums[pk] = Sums(
            add(acc.total_value, worth),
            add(acc.daily_change, change),
            add(acc.total_cost, _decimal(cost)),
            acc.positions + positions,
            acc.priced + priced,
        )
    return sums


def valuation_from_sums(
    *,
    portfolio_id: int,
    owner_id: int,
    name: str,
    sums: Sums,
    currency: str = "USD",
    ledger: Ledger = NO_LEDGER,
) -> PortfolioValuation:
    return PortfolioValuation(
        portfolio_id=portfolio_id,
        owner_id=owner_id,
        name=name,
        figures=figures_derive(
            total_value=sums.total_value, daily_change=sums.daily_change, total_cost=sums.total_cost, ledger=ledger
        ),
        positions=sums.positions,
        unpriced=sums.positions - sums.priced,
        currency=currency,
        ledger=ledger,
    )


def portfolio_valuations(*, portfolios: QuerySet[Portfolio]) -> list[PortfolioValuation]:
    """The valuation of every portfolio of the queryset at the latest quotes: its rows
    (1 query) + portfolio_sums. Portfolios with no positions come back with zeros."""
    heads = list(portfolios.order_by("pk").values_list("pk", "owner_id", "name", "base_currency", *LEDGER_FIELDS))
    sums = portfolio_sums(portfolio_ids=[head[0] for head in heads])
    return [
        valuation_from_sums(
            portfolio_id=pk,
            owner_id=owner_id,
            name=name,
            sums=sums.get(pk, NO_POSITIONS),
            currency=currency,
            ledger=Ledger(*ledger),
        )
        for pk, owner_id, name, currency, *ledger in heads
    ]


def _decimal(value: object) -> Decimal:
    """A SQL sum as Decimal: NULL (nothing priced) is 0. On PostgreSQL it already is one."""
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        return value
    return decimal.Context(prec=15).create_decimal_from_float(float(value))  # type: ignore[arg-type]
