"""The PostgreSQL pass: one share revalued by ONE statement (sql_statement.py), inside the
caller's transaction; its returned rows become the result."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from django.db import connection

from backend.portfolios.position_valuation import PositionValuation, position_valuation_derive
from backend.portfolios.valuation import FIGURE_FIELDS, NO_LEDGER, Figures, Ledger, PortfolioValuation

from .audience import Audience
from .result import RevalueResult
from .spans import Share, share_ids
from .sql_statement import share_statement

# A big share's aggregation keeps one NUMERIC sum state per portfolio: with PostgreSQL's
# default 4 MB work_mem 10,000 of them spill the hash aggregate to disk (bench/valuation_plan.txt).
BIG_SHARE = 1_000
BIG_SHARE_WORK_MEM = "64MB"
# What an owner who only hears about positions gets as a portfolio's figures (never sent).
_UNSENT = Figures(*(Decimal(0),) * len(FIGURE_FIELDS))


class _StoredRow(NamedTuple):
    """One stored portfolio someone hears about, as the statement returns it. `figures`, as
    stored, only for listened ones."""

    portfolio_id: int
    owner_id: int
    name: str
    currency: str
    figures_changed: bool
    value_changed: bool
    positions: int
    priced: int
    figures: list[Decimal] | None  # the six figures, then the three ledger ones


def aggregation_memory_raise(*, share_size: int) -> None:
    """Give a big share's aggregation room in memory, for the current transaction only."""
    if share_size >= BIG_SHARE:
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL work_mem = '{BIG_SHARE_WORK_MEM}'")


def share_revalue(share: Share, *, now: datetime, audience: Audience) -> RevalueResult:
    """Revalue one share in the caller's transaction (it also reads the moved positions of
    the portfolios its audience hears about)."""
    ids = share_ids(share)
    aggregation_memory_raise(share_size=len(ids))
    with connection.cursor() as cursor:
        # Derived data: a crash losing the last pass's commit is redone by the next pass.
        cursor.execute("SET LOCAL synchronous_commit = off")
        # The statement's cost estimate is far above jit_above_cost, and compiling its
        # expressions took longer (1.8 s) than running them.
        cursor.execute("SET LOCAL jit = off")
    heard = None if audience.everyone else set(audience.portfolios_heard(ids))
    listened = None if audience.everyone else audience.portfolios_listened(ids)
    sql, params = share_statement(share, now=now, heard=heard, listened=listened)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        *rows, (_, _, revalued, *_, changed, snapshots, _) = cursor.fetchall()
    moved: dict[int, list[PositionValuation]] = {}
    stored: list[_StoredRow] = []
    # 'm' rows carry a position's id, symbol and currency in the owner, name and currency columns.
    for kind, portfolio_id, key, name, currency, *rest in rows:
        if kind != "m":
            stored.append(_StoredRow(portfolio_id, key, name, currency, *rest))
            continue
        quantity, average_cost, cost, realized, dividends, last, price, previous, fx, fx_previous, last_fx = rest[-1]
        moved.setdefault(portfolio_id, []).append(
            position_valuation_derive(
                position_id=key,
                portfolio_id=portfolio_id,
                symbol=name,
                quantity=quantity,
                average_cost=average_cost,
                cost=cost,
                last_valued_price=last,
                price=price,
                previous_close=previous,
                currency=currency,
                fx=fx,
                fx_previous=fx_previous,
                last_fx=last_fx,
                realized_gain=realized,
                dividends=dividends,
            )
        )
    result = RevalueResult(portfolios_revalued=revalued, portfolios_changed=changed, snapshots_created=snapshots)
    for row in stored:
        valuation = PortfolioValuation(
            portfolio_id=row.portfolio_id,
            owner_id=row.owner_id,
            name=row.name,
            figures=Figures(*row.figures[: len(FIGURE_FIELDS)]) if row.figures is not None else _UNSENT,
            positions=row.positions,
            unpriced=row.positions - row.priced,
            currency=row.currency,
            ledger=Ledger(*row.figures[len(FIGURE_FIELDS) :]) if row.figures is not None else NO_LEDGER,
        )
        result.record(valuation, moved.get(row.portfolio_id, []), value_changed=row.value_changed, audience=audience)
    return result
