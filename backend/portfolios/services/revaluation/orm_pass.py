"""The ORM pass (SQLite, the embedded default; any database): one share revalued through the
ORM inside the caller's transaction, the same steps as the PostgreSQL statement, with the
figures derived in Python (valuation.py) and rounded half-even to the stored 10 places."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import cast

from django.db import connection
from django.db.models import Exists, Field, OuterRef, Q

from backend.market.models import Quote
from backend.portfolios.models import Portfolio, PortfolioSnapshot, Position, ValuationEpoch, ValuedPrice
from backend.portfolios.position_valuation import PositionValuation, by_portfolio, position_valuations
from backend.portfolios.rates import rates_latest
from backend.portfolios.sql import AnyOf, any_of_sql
from backend.portfolios.valuation import (
    FIGURE_FIELDS,
    LEDGER_FIELDS,
    NO_POSITIONS,
    OPEN,
    PRICED,
    Figures,
    Ledger,
    PortfolioValuation,
    figures_derive,
    portfolio_sums,
)

from ..bulk import rows_update
from .audience import Audience
from .result import RevalueResult
from .spans import Share, Span

# The cached fields' storage precision (DecimalField decimal_places=10).
STORED = Decimal("1e-10")


def _members(share: Share) -> Q:
    """The share's portfolios: the listed ones, or every one with positions in the span."""
    if isinstance(share, Span):
        held = Exists(Position.objects.filter(portfolio=OuterRef("pk")))
        return Q(pk__range=(share.low, share.high)) & Q(held)
    return Q(AnyOf("pk", share))


def _moved_positions(portfolio_ids: Sequence[int]) -> dict[int, list[PositionValuation]]:
    """The open positions priced at a price or rate other than their previous revaluation's."""
    if not portfolio_ids:
        return {}
    positions = Position.objects.filter(AnyOf("portfolio_id", portfolio_ids))
    return by_portfolio(position_valuations(positions=positions, moved_only=True))


def _snapshots_insert(*, portfolio_ids: Sequence[int]) -> int:
    """Copy the just-stored figures of these portfolios into snapshot rows, in the database."""
    if not portfolio_ids:
        return 0
    snapshot = PortfolioSnapshot._meta
    portfolio = Portfolio._meta
    quote = connection.ops.quote_name
    columns = ["valued_at", "total_value", "total_cost", "daily_change"]
    target = ", ".join(quote(str(cast(Field, snapshot.get_field(c)).column)) for c in ["portfolio", *columns])
    source = ", ".join(quote(c) for c in ["id", *columns])
    where, params = any_of_sql("id", portfolio_ids, connection.vendor)
    sql = (
        f"INSERT INTO {quote(snapshot.db_table)} ({target}) "  # noqa: S608 (identifiers from model meta)
        f"SELECT {source} FROM {quote(portfolio.db_table)} WHERE {where}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def _epoch_record(*, now: datetime) -> int:
    """The pass's prices (the latest quotes), recorded once."""
    epoch = ValuationEpoch.objects.create(created_at=now)
    prices = Quote.objects.values_list("asset_id", "price")
    ValuedPrice.objects.bulk_create(ValuedPrice(epoch=epoch, asset_id=a, price=p) for a, p in prices)
    return int(epoch.pk)


def _fresh_mark(portfolio_ids: Sequence[int]) -> None:
    """Mark the open positions never valued that now have a price and a rate."""
    candidates = list(
        Position.objects.filter(AnyOf("portfolio_id", portfolio_ids), valued=False)
        .filter(OPEN & PRICED)
        .values_list("pk", "asset__currency", "portfolio__base_currency")
    )
    rates = rates_latest((currency, base) for _, currency, base in candidates)
    fresh = [pk for pk, currency, base in candidates if rates[(currency, base)] is not None]
    if fresh:
        Position.objects.filter(AnyOf("pk", fresh)).update(valued=True)


def share_revalue(share: Share, *, now: datetime, audience: Audience) -> RevalueResult:
    """Revalue one share in the caller's transaction: lock its rows in id order, derive,
    store only what changed (or has a position priced other than at its previous
    revaluation), record the prices once, snapshot the changed figures."""
    heads = list(
        Portfolio.objects.filter(_members(share))
        .order_by("pk")
        .select_for_update(of=("self",))
        .values_list("pk", "owner_id", "name", "base_currency", *LEDGER_FIELDS, *FIGURE_FIELDS)
    )
    ids = [head[0] for head in heads]
    sums = portfolio_sums(portfolio_ids=ids)
    # Every moved position: here they also decide which portfolios changed.
    moved = _moved_positions(ids)
    result = RevalueResult(portfolios_revalued=len(heads))
    rows: list[tuple[int | Decimal | None, ...]] = []
    snapshot_ids: list[int] = []
    for pk, owner_id, name, currency, *columns in heads:
        ledger, old = Ledger(*columns[: len(LEDGER_FIELDS)]), columns[len(LEDGER_FIELDS) :]
        s = sums.get(pk, NO_POSITIONS)
        figures = figures_derive(
            total_value=s.total_value, daily_change=s.daily_change, total_cost=s.total_cost, ledger=ledger
        )
        new = tuple(getattr(figures, f).quantize(STORED, rounding=ROUND_HALF_EVEN) for f in FIGURE_FIELDS)
        if new == tuple(old) and pk not in moved:
            continue
        rows.append((pk, *new))
        if new != tuple(old):
            snapshot_ids.append(pk)
        valuation = PortfolioValuation(
            pk, owner_id, name, Figures(*new), s.positions, s.positions - s.priced, currency, ledger
        )
        result.record(valuation, moved.get(pk, []), value_changed=new[0] != old[0], audience=audience)
    if rows:
        epoch = _epoch_record(now=now)
        rows_update(
            model=Portfolio, fields=FIGURE_FIELDS, rows=rows, constants={"valued_at": now, "valued_epoch": epoch}
        )
        result.snapshots_created = _snapshots_insert(portfolio_ids=snapshot_ids)
        _fresh_mark([int(cast(int, row[0])) for row in rows])
    result.portfolios_changed = len(rows)
    return result
