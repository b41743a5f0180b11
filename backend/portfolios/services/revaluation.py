"""Revalue portfolios, store what changed, and tell their owners (DESIGN "Data flow").

One pass per group of portfolios, set-based: lock the group's rows, one aggregation query for
the figures, one query for the positions whose price moved, then one UPDATE for the cached
figures, one INSERT ... SELECT for the snapshots and one UPDATE for `last_valued_price`.
A portfolio whose figures and prices did not move is neither stored nor published, so a
second run on the same prices does nothing (idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import cast

from django.db import OperationalError, connection, transaction
from django.db.models import Field

from backend.market.models import Quote
from backend.portfolios.models import Portfolio, PortfolioSnapshot, Position
from consumers.publish import Event, portfolio_event, position_event, publish_batch

from .bulk import rows_update
from .payloads import portfolio_update_payload, position_update_payload
from .sql import AnyOf, any_of_sql
from .valuation import (
    NO_POSITIONS,
    Figures,
    PortfolioValuation,
    PositionValuation,
    group_by_portfolio,
    portfolio_sums,
    positions_value,
    valuation_from_sums,
)

logger = logging.getLogger(__name__)

# Portfolios per pass: one lock + aggregation + writes per group, each its own transaction.
GROUP_SIZE = 10_000
GROUP_ATTEMPTS = 5  # a run that waited for a lock fails at once on its first statement: retries are cheap
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock
# A big group's aggregation keeps one NUMERIC sum state per portfolio: with PostgreSQL's
# default 4 MB work_mem 10,000 of them spill the hash aggregate to disk (bench/valuation_plan.txt).
BIG_GROUP = 1_000
BIG_GROUP_WORK_MEM = "64MB"
# The cached fields' storage precision (DecimalField decimal_places=10).
STORED = Decimal("1e-10")
FIGURE_FIELDS = (
    "total_value",
    "total_cost",
    "daily_change",
    "daily_change_percent",
    "total_return",
    "total_return_percent",
)


@dataclass
class RevalueResult:
    portfolios_valued: int = 0
    portfolios_changed: int = 0
    snapshots_created: int = 0
    positions_moved: int = 0
    events: list[Event] = field(default_factory=list)
    published: int = 0
    valuations: list[PortfolioValuation] = field(default_factory=list)
    value_changed_ids: set[int] = field(default_factory=set)
    moved_positions: list[PositionValuation] = field(default_factory=list)

    def merge(self, other: RevalueResult) -> None:
        self.portfolios_valued += other.portfolios_valued
        self.portfolios_changed += other.portfolios_changed
        self.snapshots_created += other.snapshots_created
        self.positions_moved += other.positions_moved
        self.valuations.extend(other.valuations)
        self.value_changed_ids |= other.value_changed_ids
        self.moved_positions.extend(other.moved_positions)


def _stored(value: Decimal) -> Decimal:
    return value.quantize(STORED, rounding=ROUND_HALF_EVEN)


def _stored_figures(figures: Figures) -> tuple[Decimal, ...]:
    return tuple(_stored(getattr(figures, name)) for name in FIGURE_FIELDS)


def _groups(ids: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


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


@dataclass
class _Changed:
    valuation: PortfolioValuation
    positions: list[PositionValuation]
    value_changed: bool


def _last_valued_prices_set(*, portfolio_ids: Sequence[int]) -> int:
    """`last_valued_price = quote.price` where they differ, joined in the database. The
    group's transaction reads one snapshot (REPEATABLE READ on PostgreSQL; SQLite's
    transactions are serializable), so these are the prices the figures and events used."""
    position = Position._meta
    quote_table = Quote._meta.db_table
    q = connection.ops.quote_name
    where, params = any_of_sql("p.portfolio_id", portfolio_ids, connection.vendor)
    sql = (
        f"UPDATE {q(position.db_table)} AS p SET last_valued_price = q.price "  # noqa: S608 (identifiers from model meta)
        f"FROM {q(quote_table)} AS q WHERE q.asset_id = p.asset_id AND {where} "
        "AND (p.last_valued_price IS NULL OR p.last_valued_price <> q.price)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def aggregation_memory_raise(*, group_size: int) -> None:
    """Give a big group's aggregation room in memory, for the current transaction only."""
    if connection.vendor == "postgresql" and group_size >= BIG_GROUP:
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL work_mem = '{BIG_GROUP_WORK_MEM}'")


def _revalue_group(
    ids: Sequence[int],
    *,
    now: datetime,
    price_overrides: Mapping[str, Decimal] | None,
    result: RevalueResult,
    changed: list[_Changed],
) -> None:
    aggregation_memory_raise(group_size=len(ids))
    # Locked in id order: two overlapping runs (two batches finishing together) wait for
    # each other instead of the slower one overwriting newer figures with older ones.
    heads = list(
        Portfolio.objects.filter(AnyOf("pk", ids))
        .order_by("pk")
        .select_for_update(of=("self",))
        .values_list("pk", "owner_id", "name", *FIGURE_FIELDS)
    )
    sums = portfolio_sums(portfolio_ids=[head[0] for head in heads], price_overrides=price_overrides)
    moved = positions_value(
        positions=Position.objects.filter(AnyOf("portfolio_id", [head[0] for head in heads])),
        price_overrides=price_overrides,
        moved_only=True,
    )
    moved_by_portfolio = group_by_portfolio(moved)
    portfolio_rows: list[tuple[int | Decimal | None, ...]] = []
    snapshot_ids: list[int] = []
    for pk, owner_id, name, *old in heads:
        valuation = valuation_from_sums(portfolio_id=pk, owner_id=owner_id, name=name, sums=sums.get(pk, NO_POSITIONS))
        result.valuations.append(valuation)
        new = _stored_figures(valuation.figures)
        figures_changed = new != tuple(old)
        positions = moved_by_portfolio.get(pk, [])
        if not figures_changed and not positions:
            continue
        portfolio_rows.append((pk, *new))
        if figures_changed:
            snapshot_ids.append(pk)
        changed.append(_Changed(valuation, positions, value_changed=new[0] != old[0]))
        if new[0] != old[0]:
            result.value_changed_ids.add(pk)
    rows_update(model=Portfolio, fields=FIGURE_FIELDS, rows=portfolio_rows, constants={"valued_at": now})
    result.snapshots_created += _snapshots_insert(portfolio_ids=snapshot_ids)
    if price_overrides:
        rows_update(
            model=Position, fields=["last_valued_price"], rows=[(p.position_id, p.current_price) for p in moved]
        )
    elif moved:
        _last_valued_prices_set(portfolio_ids=[head[0] for head in heads])
    result.portfolios_valued += len(heads)
    result.portfolios_changed += len(portfolio_rows)
    result.positions_moved += len(moved)
    result.moved_positions.extend(moved)


def _events_build(changed: Sequence[_Changed], *, now: datetime) -> list[Event]:
    events: list[Event] = []
    for item in changed:
        payload = portfolio_update_payload(
            item.valuation, item.positions, value_changed=item.value_changed, valued_at=now
        )
        events.append(portfolio_event(payload))
        events.extend(
            position_event(item.valuation.owner_id, position_update_payload(p))
            for p in item.positions
            if p.significant_change
        )
    return events


def _serialization_failure(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "pgcode", None) in RETRYABLE_SQLSTATES


def _revalue_group_committed(
    ids: Sequence[int], *, now: datetime, price_overrides: Mapping[str, Decimal] | None
) -> tuple[RevalueResult, list[_Changed]]:
    """One group in its own transaction. On PostgreSQL, when this is the outermost
    transaction, it runs REPEATABLE READ: the aggregation, the moved positions and the
    prices written to `last_valued_price` all come from one snapshot of the quotes, even
    while a fetch batch commits new ones. A concurrent run that changed the same rows
    first makes it fail with a serialization error: it then starts again, a few times."""
    for attempt in range(1, GROUP_ATTEMPTS + 1):
        result = RevalueResult()
        changed: list[_Changed] = []
        outermost = not connection.in_atomic_block
        try:
            with transaction.atomic():
                if outermost and connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                _revalue_group(ids, now=now, price_overrides=price_overrides, result=result, changed=changed)
        except OperationalError as exc:
            if not (outermost and _serialization_failure(exc)) or attempt == GROUP_ATTEMPTS:
                raise
            logger.info("revaluation of %d portfolios met a concurrent one; attempt %d", len(ids), attempt + 1)
            continue
        return result, changed
    raise AssertionError("unreachable")


def portfolios_revalue(
    *,
    portfolio_ids: Collection[int],
    price_overrides: Mapping[str, Decimal] | None = None,
    publish: bool = True,
    now: datetime | None = None,
) -> RevalueResult:
    """Revalue these portfolios; store and publish only what changed. Publishing waits for
    the commit of an enclosing transaction and happens once, for the whole run."""
    now = now or datetime.now(UTC)
    result = RevalueResult()
    changed: list[_Changed] = []
    for ids in _groups(sorted(set(portfolio_ids)), GROUP_SIZE):
        group_result, group_changed = _revalue_group_committed(ids, now=now, price_overrides=price_overrides)
        result.merge(group_result)
        changed.extend(group_changed)
    result.events = _events_build(changed, now=now)
    if publish and result.events:
        events = result.events

        def _publish() -> None:
            # Stored already: a retry would find nothing changed and publish nothing, so a
            # failure is logged, not raised. Clients resync from the snapshot on (re)subscribe.
            try:
                result.published = publish_batch(events)
            except Exception:
                logger.exception("publishing %d portfolio events failed", len(events))

        transaction.on_commit(_publish)
    return result


def portfolios_holding(*, symbols: Collection[str]) -> list[int]:
    return list(
        Position.objects.filter(asset__symbol__in=list(symbols))
        .order_by("portfolio_id")
        .values_list("portfolio_id", flat=True)
        .distinct()
    )


def portfolios_revalue_for_symbols(*, symbols: Collection[str], publish: bool = True) -> RevalueResult:
    """Revalue exactly the portfolios that hold any of these symbols (the ones a fetch batch
    changed)."""
    if not symbols:
        return RevalueResult()
    return portfolios_revalue(portfolio_ids=portfolios_holding(symbols=symbols), publish=publish)
