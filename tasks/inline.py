"""The refresh pipeline run inside one process, batches on a thread pool, no worker: what
`start_price_feed` and `update_asset_prices` run. The same services as the Celery path, and
the same publish and revaluation chain (tasks/prices.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from backend.market.models import RefreshRun
from backend.market.selectors import tracked_symbols
from backend.market.services.claims import (
    claims_kept,
    cycle_lock_acquire,
    cycle_lock_release,
    inflight_claim,
    inflight_token,
)
from backend.market.services.refresh import BatchResult, batches_split, price_batch_fetch
from backend.market.services.tracking import assets_ensure

from .alerts import batch_alerts_check
from .prices import stored_batch_complete


@dataclass
class InlineCycle:
    """What a cycle did with the `symbols` it was asked for: each one is stored, failed
    (with why), unknown to every source, stale (the stored quote is newer than what the
    sources gave) or in flight (another fetch has it); none goes unaccounted."""

    run_id: int | None
    symbols: int
    stored: int
    changed: int
    failed: dict[str, str]
    unknown: list[str]
    seconds: float
    skipped_locked: bool = False
    stored_symbols: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)


def prices_refresh_inline(
    *,
    symbols: Sequence[str] | None = None,
    batch_size: int | None = None,
    max_workers: int = 2,
    publish: bool = True,
    force: bool = False,
) -> InlineCycle:
    """A whole cycle in this process, batches on a thread pool, no Celery: for
    `start_price_feed` and `update_asset_prices`. A scheduled one (no symbols, not forced)
    takes the cycle lock like beat's cycles, so the two never overlap. Named symbols not yet
    known become assets first, so their quotes are stored (raises InvalidSymbol for a
    malformed one before anything runs)."""
    started = time.monotonic()
    lock_token = None
    if symbols is None and not force:
        lock_token = cycle_lock_acquire()
        if lock_token is None:
            return InlineCycle(None, 0, 0, 0, {}, [], 0.0, skipped_locked=True)
    try:
        if symbols:
            wanted = [asset.symbol for asset in assets_ensure(symbols=symbols)]
        else:
            wanted = tracked_symbols(include_unknown=force)
        kind = RefreshRun.Kind.FORCED if (force or symbols) else RefreshRun.Kind.SCHEDULED
        run = RefreshRun.objects.create(kind=kind)
        token = inflight_token(run_id=run.pk, task_id=None)
        mine = inflight_claim(symbols=wanted, token=token)
        batches = batches_split(mine, batch_size or settings.REALTIME_BATCH_SIZE)
        RefreshRun.objects.filter(pk=run.pk).update(batches_total=len(batches), symbols_requested=len(mine))

        def one(index_batch: tuple[int, list[str]]) -> BatchResult:
            index, batch = index_batch
            try:
                return price_batch_fetch(
                    symbols=batch,
                    run_id=run.pk,
                    force=True,
                    task_id=f"inline-{run.pk}-{index}",
                    attempt=1,  # not a beat cycle's first attempt: no cycle-lock bookkeeping
                    final_attempt=True,
                )
            finally:
                connection.close()  # this pool thread's own connection; the pool ends with the cycle

        with (
            claims_kept(symbols=mine, token=token, run_id=None, lock_token=lock_token),
            ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="price-batch") as pool,
        ):
            results = list(pool.map(one, enumerate(batches)))
        # From this thread once the pool is done: the channel layer is not safe from several
        # threads' event loops at once.
        for result in results:
            if publish:
                stored_batch_complete(result)
            else:
                # Nothing pushed, but every stored quote is still checked: the firings are
                # stored and clients find them at /api/notifications/.
                batch_alerts_check(result)
        if not batches:
            RefreshRun.objects.filter(pk=run.pk).update(finished_at=run.started_at)
        changed = sorted({s for r in results for s in r.changed})
        claimed = set(mine)
        stored = [s for r in results for s in r.stored]
        return InlineCycle(
            run_id=run.pk,
            symbols=len(wanted),
            stored=len(stored),
            changed=len(changed),
            failed={k: v for r in results for k, v in r.failed.items()},
            unknown=[s for r in results for s in r.unknown],
            seconds=time.monotonic() - started,
            stored_symbols=stored,
            stale=[s for r in results for s in r.stale],
            in_flight=[s for s in wanted if s not in claimed] + [s for r in results for s in r.in_flight],
        )
    finally:
        if lock_token is not None:
            cycle_lock_release(token=lock_token)
