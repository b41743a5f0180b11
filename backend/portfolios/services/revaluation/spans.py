"""How a run is cut: into shares of at most SHARE_SIZE portfolios, each revalued in its own
transaction, on up to PORTFOLIO_RECALC_CONNECTIONS connections side by side (PostgreSQL runs
no writing statement in parallel by itself, so one pass uses one core).

A share is a list of portfolio ids, or (a full refresh on PostgreSQL) a `Span` of ids: every
portfolio with positions whose id lies in it, found by the pass's own statement.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.db import connection
from django.db import connections as db_connections
from django.db.models import Count, Max, Min

from backend.portfolios.models import Portfolio

from .result import RevalueResult

# Portfolios per share: one lock + aggregation + writes each, in its own transaction.
SHARE_SIZE = 10_000
# A run of at least this many portfolios per connection is split over several connections.
PARALLEL_MIN_SHARE = 1_000


@dataclass(frozen=True)
class Span:
    """Every portfolio with positions whose id lies in low..high."""

    low: int
    high: int

    @property
    def ids(self) -> range:
        return range(self.low, self.high + 1)


Share = Sequence[int] | Span


def share_ids(share: Share) -> Sequence[int]:
    return share.ids if isinstance(share, Span) else share


def share_described(share: Share) -> str:
    return f"{share.low}..{share.high}" if isinstance(share, Span) else f"of {len(share)} portfolios"


def _share_count(portfolios: int, *, connection_count: int) -> int:
    """Enough shares that none holds more than SHARE_SIZE; a big run gets a multiple of the
    connections it may use (PARALLEL_MIN_SHARE each at least), so they finish together."""
    count = -(-portfolios // SHARE_SIZE)
    parallel = min(connection_count, portfolios // PARALLEL_MIN_SHARE)
    if parallel > 1:
        count = -(-count // parallel) * parallel
    return count


def shares_split(ids: Sequence[int], *, connection_count: int) -> list[Sequence[int]]:
    """These portfolios in shares of even sizes (see _share_count)."""
    if not ids:
        return []
    size = -(-len(ids) // _share_count(len(ids), connection_count=connection_count))
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def portfolio_id_spans(*, connection_count: int) -> list[Span]:
    """PostgreSQL: every portfolio, cut by id into spans of about equal numbers of portfolios
    (at id quantiles, so gaps in the ids do not matter), as many as _share_count gives.
    Empty: no portfolios."""
    bounds = Portfolio.objects.aggregate(low=Min("pk"), high=Max("pk"), portfolios=Count("pk"))
    low, high, portfolios = bounds["low"], bounds["high"], bounds["portfolios"]
    if low is None or high is None:
        return []
    parts = _share_count(portfolios, connection_count=connection_count)
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


def shares_revalue(
    shares: Sequence[Share], revalue: Callable[[Share], RevalueResult], *, connection_count: int
) -> RevalueResult:
    """`revalue` every share, on up to `connection_count` connections at once: this thread's
    and helper threads' own, closed when they finish. Shares hold disjoint portfolios, so
    shares revalued side by side never wait for each other's locks. If one fails, the others
    finish the share they are at and take no more; the shares already committed stay
    committed, as when run one by one. The results are merged in the shares' order."""
    results = [RevalueResult() for _ in shares]
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
                results[index] = revalue(share)
            except BaseException:
                failed.set()
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
                # while it waits: the helpers finish their share and take no more.
                failed.set()
                raise
    total = RevalueResult()
    for result in results:
        total.merge(result)
    return total
