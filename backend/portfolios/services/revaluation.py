"""Revalue portfolios, store what changed, and tell their owners (DESIGN "Data flow").

One pass per group of portfolios, each its own transaction. On PostgreSQL the pass is ONE
statement (revaluation_sql.py): lock, aggregate, derive in NUMERIC, store only what changed,
record the prices used, snapshot, RETURN the stored rows. Elsewhere (SQLite, dev without
services) the same steps run through the ORM with the figures derived in Python.

"The price of a position's previous valuation" lives in valuation epochs (models.py), not on
the position rows. Only the events someone can receive are built (`Audience`): a
`portfolio_update` for portfolios with a live subscriber, a `position_update` for owners with
a live connection; positions are read (and `positions_updated` filled) only for those.
Publishing to a group nobody listens to was a no-op anyway, and a client that subscribes
later gets a snapshot valued at the latest quotes on subscribe.

A portfolio whose figures and prices did not move is neither stored nor published, so a
second run on the same prices does nothing (idempotent).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import partial
from typing import ClassVar, cast

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db import connections as db_connections
from django.db.models import Count, Exists, Field, Max, Min, OuterRef

from backend.market.models import Asset, Quote
from backend.portfolios.models import Portfolio, PortfolioSnapshot, Position, ValuationEpoch, ValuedPrice
from backend.realtime.events import Event, portfolio_event, position_event
from backend.realtime.publish import publish_batch
from backend.realtime.registry import ConnectionManager

from .bulk import rows_update
from .payloads import portfolio_update_payload, position_update_payload
from .revaluation_sql import Span, group_store, group_store_statement, override_asset_prices
from .sql import AnyOf, any_of_sql
from .valuation import (
    NO_POSITIONS,
    Figures,
    PortfolioValuation,
    PositionValuation,
    group_by_portfolio,
    portfolio_sums,
    positions_value,
    priced_filter,
    valuation_from_sums,
)

logger = logging.getLogger(__name__)

# Portfolios per pass: one lock + aggregation + writes per group, each its own transaction.
GROUP_SIZE = 10_000
# A run of at least this many portfolios per connection is split over
# PORTFOLIO_RECALC_CONNECTIONS connections, its groups revalued side by side: PostgreSQL runs
# no writing statement in parallel by itself, so one pass uses one core.
PARALLEL_MIN_GROUP = 1_000
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


@dataclass(frozen=True)
class Audience:
    """Who can receive this run's events. None: anyone (build every event)."""

    portfolio_ids: frozenset[int] | None = None  # with a live subscriber
    owner_ids: frozenset[int] | None = None  # with a live connection

    EVERYONE: ClassVar[Audience]

    @property
    def everyone(self) -> bool:
        return self.portfolio_ids is None

    def listens_to(self, portfolio_id: int) -> bool:
        return self.portfolio_ids is None or portfolio_id in self.portfolio_ids

    def connected(self, owner_id: int) -> bool:
        return self.owner_ids is None or owner_id in self.owner_ids

    def portfolios_heard(self, ids: Sequence[int]) -> Sequence[int]:
        """Those of these portfolios (a list, or a range of ids) someone can hear about:
        subscribed, or the owner is connected (one indexed query for the owners' portfolios).
        Only the audience's own, small, sets are walked."""
        if self.portfolio_ids is None or self.owner_ids is None:
            return ids
        members = ids if isinstance(ids, range) else frozenset(ids)
        heard = {pk for pk in self.portfolio_ids if pk in members}
        if self.owner_ids:
            owned = Portfolio.objects.filter(AnyOf("owner_id", self.owner_ids)).values_list("pk", flat=True)
            heard.update(pk for pk in owned if pk in members)
        return sorted(heard)

    def portfolios_listened(self, ids: Sequence[int]) -> list[int] | None:
        """Those of these portfolios (a list, or a range of ids) with a live subscriber;
        None: all of them."""
        if self.portfolio_ids is None:
            return None
        members = ids if isinstance(ids, range) else frozenset(ids)
        return sorted(pk for pk in self.portfolio_ids if pk in members)


Audience.EVERYONE = Audience()


def audience_live() -> Audience:
    """Who is connected now, on every Daphne process (the connection registry). If the
    registry cannot be read, everyone: every event is built, as before."""
    manager = ConnectionManager()
    try:
        portfolios, owners = manager.listeners()
    except Exception:
        logger.warning("connection registry unreadable: building every event", exc_info=True)
        return Audience.EVERYONE
    finally:
        manager.redis.close()
    return Audience(frozenset(portfolios), frozenset(owners))


@dataclass
class _Changed:
    valuation: PortfolioValuation  # as stored
    positions: list[PositionValuation]  # moved, read for the audience only
    value_changed: bool


@dataclass
class RevalueResult:
    portfolios_valued: int = 0
    portfolios_changed: int = 0
    snapshots_created: int = 0
    positions_read: int = 0  # moved positions of changed portfolios someone hears about
    events: list[Event] = field(default_factory=list)
    published: int = 0
    # Of the changed portfolios someone hears about (all, for EVERYONE): the stored
    # valuations of those listened to, the ids of those whose total value changed.
    valuations: list[PortfolioValuation] = field(default_factory=list)
    value_changed_ids: set[int] = field(default_factory=set)
    moved_positions: list[PositionValuation] = field(default_factory=list)
    changed: list[_Changed] = field(default_factory=list, repr=False)

    def merge(self, other: RevalueResult) -> None:
        self.portfolios_valued += other.portfolios_valued
        self.portfolios_changed += other.portfolios_changed
        self.snapshots_created += other.snapshots_created
        self.positions_read += other.positions_read
        self.valuations.extend(other.valuations)
        self.value_changed_ids |= other.value_changed_ids
        self.moved_positions.extend(other.moved_positions)
        self.changed.extend(other.changed)


def _stored(value: Decimal) -> Decimal:
    return value.quantize(STORED, rounding=ROUND_HALF_EVEN)


def _stored_figures(figures: Figures) -> Figures:
    return Figures(*(_stored(getattr(figures, name)) for name in FIGURE_FIELDS))


def groups_split(ids: Sequence[int], *, connection_count: int) -> list[Sequence[int]]:
    """At most GROUP_SIZE portfolios each, of even sizes; a big run gets a multiple of the
    connections it may use, so they finish together."""
    if not ids:
        return []
    count = -(-len(ids) // GROUP_SIZE)
    parallel = min(connection_count, len(ids) // PARALLEL_MIN_GROUP)
    if parallel > 1:
        count = -(-count // parallel) * parallel
    size = -(-len(ids) // count)
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def aggregation_memory_raise(*, group_size: int) -> None:
    """Give a big group's aggregation room in memory, for the current transaction only."""
    if connection.vendor == "postgresql" and group_size >= BIG_GROUP:
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL work_mem = '{BIG_GROUP_WORK_MEM}'")


def _moved_positions(
    portfolio_ids: Sequence[int], *, price_overrides: Mapping[str, Decimal] | None
) -> dict[int, list[PositionValuation]]:
    """The positions priced at something other than their previous valuation's price, by
    portfolio (the ORM pass; the PostgreSQL pass reads them in its statement)."""
    if not portfolio_ids:
        return {}
    positions = Position.objects.filter(AnyOf("portfolio_id", portfolio_ids))
    return group_by_portfolio(positions_value(positions=positions, price_overrides=price_overrides, moved_only=True))


def _collect(
    result: RevalueResult,
    *,
    valuation: PortfolioValuation,
    value_changed: bool,
    moved: Mapping[int, list[PositionValuation]],
    audience: Audience,
) -> None:
    """Record one stored portfolio and what its audience is told about it."""
    pk = valuation.portfolio_id
    if audience.listens_to(pk) or audience.connected(valuation.owner_id):
        if value_changed:
            result.value_changed_ids.add(pk)
        positions = moved.get(pk, [])
        result.changed.append(_Changed(valuation, positions, value_changed))
        result.moved_positions.extend(positions)
        result.positions_read += len(positions)
        if audience.listens_to(pk):
            result.valuations.append(valuation)


# A group revalued in one transaction: listed portfolios, or a span of ids (PostgreSQL).
Group = Sequence[int] | Span


@dataclass(frozen=True)
class _Run:
    """What every group of one run shares."""

    now: datetime
    price_overrides: Mapping[str, Decimal] | None
    audience: Audience


def _revalue_group_sql(group: Group, run: _Run, result: RevalueResult) -> None:
    """PostgreSQL: the one-statement pass (it also reads the audience's moved positions)."""
    now, price_overrides, audience = run.now, run.price_overrides, run.audience
    ids = group.ids if isinstance(group, Span) else group
    aggregation_memory_raise(group_size=len(ids))
    with connection.cursor() as cursor:
        # Derived data: a crash losing the last pass's commit is redone by the next pass.
        cursor.execute("SET LOCAL synchronous_commit = off")
        # The statement's cost estimate is far above jit_above_cost, and compiling its
        # expressions took longer (1.8 s) than running them.
        cursor.execute("SET LOCAL jit = off")
    everyone = audience.everyone
    heard = None if everyone else set(audience.portfolios_heard(ids))
    listened = None if everyone else audience.portfolios_listened(ids)
    stored = group_store(
        *group_store_statement(group, now=now, price_overrides=price_overrides, heard=heard, listened=listened)
    )
    unsent = Figures(*(Decimal(0),) * len(FIGURE_FIELDS))  # an owner is told of positions only
    for row in stored.rows:
        valuation = PortfolioValuation(
            portfolio_id=row.portfolio_id,
            owner_id=row.owner_id,
            name=row.name,
            figures=Figures(*row.figures) if row.figures is not None else unsent,
            positions=row.positions,
            unpriced=row.positions - row.priced,
        )
        _collect(result, valuation=valuation, value_changed=row.value_changed, moved=stored.moved, audience=audience)
    result.portfolios_valued += stored.valued
    result.portfolios_changed += stored.portfolios
    result.snapshots_created += stored.snapshots


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


def _epoch_record(*, now: datetime, price_overrides: Mapping[str, Decimal] | None) -> int:
    """The ORM pass's prices (latest quotes, overridden), recorded once."""
    prices = dict(Quote.objects.values_list("asset_id", "price"))
    prices.update(zip(*override_asset_prices(price_overrides), strict=True))
    epoch = ValuationEpoch.objects.create(created_at=now)
    ValuedPrice.objects.bulk_create(ValuedPrice(epoch=epoch, asset_id=a, price=p) for a, p in prices.items())
    return int(epoch.pk)


def epochs_collect() -> None:
    """Delete the valuation epochs no portfolio points at any more. Once per run, after its
    groups committed (in READ COMMITTED outside a caller's transaction): groups committing
    side by side would otherwise each delete the same epochs and fail on each other. An
    epoch a pass in flight is creating is not visible yet, so it is never taken."""
    referenced = Portfolio.objects.filter(valued_epoch__isnull=False).values("valued_epoch")
    garbage = list(ValuationEpoch.objects.exclude(pk__in=referenced).values_list("pk", flat=True))
    ValuedPrice.objects.filter(epoch_id__in=garbage).delete()
    ValuationEpoch.objects.filter(pk__in=garbage).delete()


def _revalue_group_orm(group: Group, run: _Run, result: RevalueResult) -> None:
    """Any database (SQLite): the same pass through the ORM, figures derived in Python."""
    now, price_overrides, audience = run.now, run.price_overrides, run.audience
    if isinstance(group, Span):
        raise TypeError("a span of ids is a PostgreSQL pass's group")
    ids = group
    heads = list(
        Portfolio.objects.filter(AnyOf("pk", ids))
        .order_by("pk")
        .select_for_update(of=("self",))
        .values_list("pk", "owner_id", "name", *FIGURE_FIELDS)
    )
    sums = portfolio_sums(portfolio_ids=[head[0] for head in heads], price_overrides=price_overrides)
    # Every moved position: here they also decide which portfolios changed.
    moved = _moved_positions(ids, price_overrides=price_overrides)
    rows: list[tuple[int | Decimal | None, ...]] = []
    snapshot_ids: list[int] = []
    for pk, owner_id, name, *old in heads:
        valuation = valuation_from_sums(portfolio_id=pk, owner_id=owner_id, name=name, sums=sums.get(pk, NO_POSITIONS))
        valuation = replace(valuation, figures=_stored_figures(valuation.figures))
        new = tuple(getattr(valuation.figures, name) for name in FIGURE_FIELDS)
        if new == tuple(old) and pk not in moved:
            continue
        rows.append((pk, *new))
        if new != tuple(old):
            snapshot_ids.append(pk)
        _collect(result, valuation=valuation, value_changed=new[0] != old[0], moved=moved, audience=audience)
    if rows:
        epoch = _epoch_record(now=now, price_overrides=price_overrides)
        rows_update(
            model=Portfolio, fields=FIGURE_FIELDS, rows=rows, constants={"valued_at": now, "valued_epoch": epoch}
        )
        result.snapshots_created += _snapshots_insert(portfolio_ids=snapshot_ids)
        changed_ids = [int(cast(int, row[0])) for row in rows]
        Position.objects.filter(AnyOf("portfolio_id", changed_ids), valued=False).filter(
            priced_filter("", price_overrides)
        ).update(valued=True)
    result.portfolios_valued += len(heads)
    result.portfolios_changed += len(rows)


def _events_build(changed: Sequence[_Changed], *, now: datetime, audience: Audience) -> list[Event]:
    events: list[Event] = []
    for item in changed:
        valuation = item.valuation
        if audience.listens_to(valuation.portfolio_id):
            payload = portfolio_update_payload(
                valuation, item.positions, value_changed=item.value_changed, valued_at=now
            )
            events.append(portfolio_event(payload))
        if audience.connected(valuation.owner_id):
            events.extend(
                position_event(valuation.owner_id, position_update_payload(p))
                for p in item.positions
                if p.significant_change
            )
    return events


def _serialization_failure(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "pgcode", None) in RETRYABLE_SQLSTATES


def _revalue_group_committed(group: Group, run: _Run) -> RevalueResult:
    """One group in its own transaction. On PostgreSQL, when this is the outermost
    transaction, it runs REPEATABLE READ: the moved positions, the aggregation and the prices
    recorded all come from one snapshot of the quotes, even while a fetch batch commits new
    ones. A concurrent run that changed the same rows first makes it fail with a
    serialization error: it then starts again, a few times."""
    revalue = _revalue_group_sql if connection.vendor == "postgresql" else _revalue_group_orm
    for attempt in range(1, GROUP_ATTEMPTS + 1):
        result = RevalueResult()
        outermost = not connection.in_atomic_block
        try:
            with transaction.atomic():
                if outermost and connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                revalue(group, run, result)
        except OperationalError as exc:
            if not (outermost and _serialization_failure(exc)) or attempt == GROUP_ATTEMPTS:
                raise
            logger.info("revaluation of group %s met a concurrent one; attempt %d", _described(group), attempt + 1)
            continue
        return result
    raise AssertionError("unreachable")


# One share of a run: returns its portfolios (found by the thread that runs it): ids, revalued
# in groups of at most GROUP_SIZE, or a span, revalued as one group.
Share = Callable[[], Sequence[int] | Span]


def _given(portfolios: Group) -> Group:
    """A share whose portfolios are known before it runs."""
    return portfolios


def _described(group: Group) -> str:
    return f"{group.low}..{group.high}" if isinstance(group, Span) else f"of {len(group)} portfolios"


def _shares_revalue(shares: Sequence[Share], run: _Run, *, connection_count: int) -> RevalueResult:
    """Every share, its portfolios in groups of at most GROUP_SIZE, each group in its own
    transaction; on up to `connection_count` connections at once (this thread's and helper
    threads' own, closed when they finish). Shares hold disjoint portfolios, so groups running
    side by side never wait for each other's locks. If a group fails, the groups already
    committed stay committed, as when run one by one."""
    if not shares:
        return RevalueResult()
    results: list[RevalueResult] = [RevalueResult() for _ in shares]
    pending = iter(enumerate(shares))
    taking = threading.Lock()
    failed = threading.Event()

    def drain() -> None:
        while not failed.is_set():
            with taking:
                item = next(pending, None)
            if item is None:
                return
            index, share = item
            try:
                portfolios = share()
                groups = [portfolios] if isinstance(portfolios, Span) else groups_split(portfolios, connection_count=1)
                for group in groups:
                    results[index].merge(_revalue_group_committed(group, run))
            except BaseException:
                failed.set()  # the others finish their group and take no more
                raise

    def helper() -> None:
        try:
            drain()
        finally:
            db_connections.close_all()  # this thread's only

    helpers = min(len(shares), connection_count) - 1
    if helpers < 1:
        drain()
    else:
        with ThreadPoolExecutor(max_workers=helpers, thread_name_prefix="revalue") as pool:
            futures = [pool.submit(helper) for _ in range(helpers)]
            try:
                drain()
                for future in futures:
                    future.result()
            except BaseException:
                # This thread's own failure, a helper's, or the task's soft time limit landing
                # while it waits: the helpers finish their group and take no more.
                failed.set()
                raise
    result = RevalueResult()
    for part in results:
        result.merge(part)
    return result


def _revalue_run(
    split: Callable[[int], Sequence[Share]],
    *,
    price_overrides: Mapping[str, Decimal] | None,
    publish: bool,
    now: datetime | None,
    audience: Audience | None,
) -> RevalueResult:
    """A run: `split(n)` cuts its portfolios into shares for n connections; on PostgreSQL,
    outside a caller's transaction, n is PORTFOLIO_RECALC_CONNECTIONS, else 1."""
    now = now or datetime.now(UTC)
    audience = audience or audience_live()
    run = _Run(now=now, price_overrides=price_overrides, audience=audience)
    parallel = connection.vendor == "postgresql" and not connection.in_atomic_block
    connection_count = max(1, settings.PORTFOLIO_RECALC_CONNECTIONS) if parallel else 1
    result = _shares_revalue(split(connection_count), run, connection_count=connection_count)
    if result.portfolios_changed:
        try:
            epochs_collect()
        except DatabaseError:
            # Housekeeping: the next run collects them. The figures are stored, so the events
            # must still go out.
            logger.warning("collecting unreferenced valuation epochs failed", exc_info=True)
    result.events = _events_build(result.changed, now=now, audience=audience)
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


def portfolios_revalue(
    *,
    portfolio_ids: Collection[int],
    price_overrides: Mapping[str, Decimal] | None = None,
    publish: bool = True,
    now: datetime | None = None,
    audience: Audience | None = None,
) -> RevalueResult:
    """Revalue these portfolios; store only what changed; build (and publish) the events
    their audience can receive (default: whoever is connected now). Publishing waits for
    the commit of an enclosing transaction and happens once, for the whole run."""
    ids = sorted(set(portfolio_ids))
    return _revalue_run(
        lambda n: [partial(_given, group) for group in groups_split(ids, connection_count=n)],
        price_overrides=price_overrides,
        publish=publish,
        now=now,
        audience=audience,
    )


def portfolios_holding(*, symbols: Collection[str]) -> list[int]:
    return list(
        Position.objects.filter(asset__symbol__in=list(symbols))
        .order_by("portfolio_id")
        .values_list("portfolio_id", flat=True)
        .distinct()
    )


def portfolio_id_spans(*, count: int) -> list[Span]:
    """PostgreSQL: the portfolios cut by id into spans of about equal numbers of portfolios
    (at id quantiles, so gaps in the ids do not matter): at least `count` of them, a multiple
    of it, if there are enough portfolios to be worth splitting (PARALLEL_MIN_GROUP each),
    and enough that none holds more than about GROUP_SIZE. Empty: no portfolios."""
    bounds = Portfolio.objects.aggregate(low=Min("pk"), high=Max("pk"), portfolios=Count("pk"))
    low, high, portfolios = bounds["low"], bounds["high"], bounds["portfolios"]
    if low is None or high is None:
        return []
    parts = -(-portfolios // GROUP_SIZE)
    parallel = min(count, portfolios // PARALLEL_MIN_GROUP)
    if parallel > 1:
        parts = -(-parts // parallel) * parallel
    cuts: list[int] = []
    if parts > 1:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY id) FROM portfolios_portfolio",
                [[index / parts for index in range(1, parts)]],
            )
            (cuts,) = cursor.fetchone()
    ends = [*sorted(set(cuts) - {high}), high]
    starts = [low, *(end + 1 for end in ends[:-1])]
    return [Span(start, end) for start, end in zip(starts, ends, strict=True)]


def holdings_all_among(*, symbols: Collection[str]) -> bool:
    """Whether every asset someone holds is one of these (a full refresh): then the holders
    are simply every portfolio with positions. One probe per other asset, on the positions'
    asset index."""
    held = Position.objects.filter(asset=OuterRef("pk"))
    return not Asset.objects.exclude(symbol__in=list(symbols)).filter(Exists(held)).exists()


def portfolios_revalue_for_symbols(
    *, symbols: Collection[str], publish: bool = True, audience: Audience | None = None
) -> RevalueResult:
    """Revalue exactly the portfolios that hold any of these symbols (the ones a fetch batch
    changed). On PostgreSQL, when every held asset is among them (a full refresh), the run is
    cut into id spans, each one group of every portfolio with positions in it, found by the
    group's own statement; otherwise the holders are looked up first."""
    if not symbols:
        return RevalueResult()
    spans = connection.vendor == "postgresql" and holdings_all_among(symbols=symbols)

    def split(count: int) -> list[Share]:
        if spans:
            return [partial(_given, span) for span in portfolio_id_spans(count=count)]
        holders = portfolios_holding(symbols=symbols)
        return [partial(_given, group) for group in groups_split(holders, connection_count=count)]

    return _revalue_run(split, price_overrides=None, publish=publish, now=None, audience=audience)
