"""Revaluation: revalue portfolios at the latest quotes, store only what changed, and return
the events their audience can receive. Services never publish: the caller (tasks/) publishes
`RevalueResult.events` once the run committed.

A run is cut into shares (spans.py), each revalued in its own transaction by the pass of the
database: on PostgreSQL ONE statement (sql_pass.py: lock, aggregate, derive in NUMERIC, store
only what changed, record the prices used, snapshot, RETURN the stored rows); elsewhere
(SQLite, the embedded default) the same steps through the ORM (orm_pass.py). Both store the
same figures and give the same events.

"The price of a position's previous revaluation" lives in valuation epochs (models.py), not
on the position rows. Only the events someone can receive are built (audience.py). A
portfolio whose figures and prices did not move is neither stored nor told about, so a
second run on the same prices does nothing (idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.models import Exists, OuterRef, Q

from backend.market.currency import currencies_of_major, pair_parse
from backend.market.models import Asset
from backend.portfolios.models import Portfolio, Position, ValuationEpoch, ValuedPrice

from . import orm_pass, sql_pass
from .audience import Audience, audience_live
from .events import events_build
from .result import RevalueResult
from .spans import Share, portfolio_id_spans, share_described, shares_revalue, shares_split

__all__ = ["Audience", "RevalueResult", "portfolios_revalue", "portfolios_revalue_for_symbols"]

logger = logging.getLogger(__name__)

SHARE_ATTEMPTS = 5  # a run that waited for a lock fails at once on its first statement: retries are cheap
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock


class SharePass(Protocol):
    """A pass: revalue one share inside the caller's transaction."""

    def __call__(self, share: Share, *, now: datetime, audience: Audience) -> RevalueResult: ...


def share_pass(vendor: str) -> SharePass:
    """The pass revaluing one share on this database."""
    return sql_pass.share_revalue if vendor == "postgresql" else orm_pass.share_revalue


def _serialization_failure(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "pgcode", None) in RETRYABLE_SQLSTATES


def _share_revalue_committed(share: Share, *, now: datetime, audience: Audience) -> RevalueResult:
    """One share in its own transaction. On PostgreSQL, when this is the outermost
    transaction, it runs REPEATABLE READ: the moved positions, the aggregation and the prices
    recorded all come from one snapshot of the quotes, even while a price-fetch batch commits
    new ones. A concurrent run that changed the same rows first makes it fail with a
    serialization error: it then starts again, a few times."""
    revalue = share_pass(connection.vendor)
    for attempt in range(1, SHARE_ATTEMPTS + 1):
        outermost = not connection.in_atomic_block
        try:
            with transaction.atomic():
                if outermost and connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                return revalue(share, now=now, audience=audience)
        except OperationalError as exc:
            if not (outermost and _serialization_failure(exc)) or attempt == SHARE_ATTEMPTS:
                raise
            logger.info("revaluation of share %s met a concurrent one; attempt %d", share_described(share), attempt + 1)
    raise AssertionError("unreachable")


def epochs_collect() -> None:
    """Delete the valuation epochs no portfolio points at any more. Once per run, after its
    shares committed (in READ COMMITTED outside a caller's transaction): shares committing
    side by side would otherwise each delete the same epochs and fail on each other. An
    epoch a pass in flight is creating is not visible yet, so it is never taken."""
    referenced = Portfolio.objects.filter(valued_epoch__isnull=False).values("valued_epoch")
    garbage = list(ValuationEpoch.objects.exclude(pk__in=referenced).values_list("pk", flat=True))
    ValuedPrice.objects.filter(epoch_id__in=garbage).delete()
    ValuationEpoch.objects.filter(pk__in=garbage).delete()


def _connection_count() -> int:
    """PORTFOLIO_RECALC_CONNECTIONS on PostgreSQL outside a caller's transaction, else 1."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        return max(1, settings.PORTFOLIO_RECALC_CONNECTIONS)
    return 1


def _run(
    shares: Sequence[Share], *, connection_count: int, now: datetime | None, audience: Audience | None
) -> RevalueResult:
    now = now or datetime.now(UTC)
    audience = audience or audience_live()
    revalue = partial(_share_revalue_committed, now=now, audience=audience)
    result = shares_revalue(shares, revalue, connection_count=connection_count)
    if result.portfolios_changed:
        try:
            epochs_collect()
        except DatabaseError:
            # Housekeeping: the next run collects them. The figures are stored, so the events
            # must still go out.
            logger.warning("collecting unreferenced valuation epochs failed", exc_info=True)
    result.events = events_build(result.revalued, now=now, audience=audience)
    return result


def portfolios_revalue(
    *, portfolio_ids: Collection[int], now: datetime | None = None, audience: Audience | None = None
) -> RevalueResult:
    """Revalue these portfolios; store only what changed; return the events their audience
    can receive (default: whoever is connected now), for the caller to publish once the run
    committed (inside a caller's transaction: once that commits)."""
    count = _connection_count()
    shares = shares_split(sorted(set(portfolio_ids)), connection_count=count)
    return _run(shares, connection_count=count, now=now, audience=audience)


def portfolios_holding(*, symbols: Collection[str]) -> list[int]:
    """The portfolios holding any of these symbols, or converting through any of them (a pair
    `EURUSD=X`: USD portfolios holding EUR assets)."""
    holders = Q(asset__symbol__in=list(symbols))
    for symbol in symbols:
        if (pair := pair_parse(symbol)) is not None:
            holders |= Q(asset__currency__in=currencies_of_major(pair[0]), portfolio__base_currency=pair[1])
    return list(
        Position.objects.filter(holders, quantity__gt=0)
        .order_by("portfolio_id")
        .values_list("portfolio_id", flat=True)
        .distinct()
    )


def holdings_all_among(*, symbols: Collection[str]) -> bool:
    """Whether every asset someone holds is one of these (a full refresh): then the holders
    are simply every portfolio with positions. One probe per other asset, on the positions'
    asset index."""
    held = Position.objects.filter(asset=OuterRef("pk"))
    return not Asset.objects.exclude(symbol__in=list(symbols)).filter(Exists(held)).exists()


def portfolios_revalue_for_symbols(
    *, symbols: Collection[str], now: datetime | None = None, audience: Audience | None = None
) -> RevalueResult:
    """Revalue exactly the portfolios that hold any of these symbols (the ones a price-fetch
    batch changed) or convert through one of them (a pair), as portfolios_revalue. On
    PostgreSQL, when every held asset is among them (a full refresh), the run is cut into id
    spans, each one share of every portfolio with positions in it, found by the pass's own
    statement; otherwise the holders are looked up."""
    if not symbols:
        return RevalueResult()
    count = _connection_count()
    shares: Sequence[Share]
    if connection.vendor == "postgresql" and holdings_all_among(symbols=symbols):
        shares = portfolio_id_spans(connection_count=count)
    else:
        shares = shares_split(portfolios_holding(symbols=symbols), connection_count=count)
    return _run(shares, connection_count=count, now=now, audience=audience)
