"""Refresh cycles and forced refreshes: deciding what to fetch, dispatching batches, and
fetching one batch (sources -> store -> the events to publish). tasks/prices.py is the
adapter: it publishes the events, chains the revaluation and enqueues the batches a dispatch
announces (backend/market/signals.py)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F

from backend.core.metrics import counter_add
from backend.market.models import RefreshRun
from backend.market.selectors import quote_cache_key, tracked_symbols
from backend.market.signals import price_batches_dispatched
from backend.market.symbols import InvalidSymbol, symbol_normalize
from backend.realtime.events import Event, asset_event, unknown_symbol_event

from .claims import (
    beat_tick_claim,
    cycle_batch_attempted,
    cycle_batches_add,
    cycle_lock_acquire,
    cycle_lock_release,
    cycle_register,
    inflight_claim,
    inflight_release,
    inflight_token,
)
from .ingest import assets_mark_failing, assets_mark_unknown, quotes_store, refresh_run_record
from .manager import data_source_manager
from .sources.base import FailureKind, QuoteData
from .tracking import assets_ensure

logger = logging.getLogger(__name__)


@dataclass
class RefreshDispatch:
    run_id: int | None = None
    task_ids: list[str] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    skipped_locked: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def batches_split(symbols: Sequence[str], size: int) -> list[list[str]]:
    size = max(1, size)
    return [list(symbols[i : i + size]) for i in range(0, len(symbols), size)]


def _dispatch(
    *, symbols: Sequence[str], kind: str, force: bool, batch_size: int | None, lock_token: str | None
) -> RefreshDispatch:
    symbols = list(dict.fromkeys(symbols))
    with transaction.atomic():
        run = RefreshRun.objects.create(kind=kind)
        counter_add("cycles", 1, kind=kind)
        # Claimed now, not when a batch starts: a queued batch's symbols count as in flight.
        mine = set(inflight_claim(symbols=symbols, token=inflight_token(run_id=run.pk, task_id=None)))
        dispatched = [s for s in symbols if s in mine]
        batches = batches_split(dispatched, batch_size or settings.REALTIME_BATCH_SIZE)
        task_ids = [str(uuid.uuid4()) for _ in batches]
        RefreshRun.objects.filter(pk=run.pk).update(batches_total=len(batches), symbols_requested=len(dispatched))
        if not batches:
            RefreshRun.objects.filter(pk=run.pk).update(finished_at=run.started_at)

        if batches:
            # Before the batches are sent: a fast batch must find its run registered.
            cycle_register(run_id=run.pk, lock_token=lock_token, batches=len(batches), symbols=dispatched)
        if batches:
            # The receiver enqueues after commit: a batch must find its run stored.
            price_batches_dispatched.send(
                sender=RefreshRun, run_id=run.pk, batches=list(zip(task_ids, batches, strict=True)), force=force
            )
    if lock_token is not None and not batches:
        cycle_lock_release(token=lock_token)
    in_flight = [s for s in symbols if s not in mine]
    if in_flight:
        logger.info("run %s: %d symbols already being fetched, left to that fetch", run.pk, len(in_flight))
    return RefreshDispatch(run_id=run.pk, task_ids=task_ids, symbols=dispatched, in_flight=in_flight)


def beat_entry_interval(*, entry: str) -> float:
    """The entry's interval as beat runs it (editable in the admin), else the setting."""
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.filter(name=entry).select_related("interval").first()
    if task is not None and task.interval is not None:
        return float(task.interval.schedule.run_every.total_seconds())
    return float(settings.REALTIME_UPDATE_INTERVAL)


def prices_refresh_cycle(
    *, batch_size: int | None = None, beat_entry: str | None = None, beat_sent_at: float | None = None
) -> RefreshDispatch:
    """One scheduled cycle: every tracked symbol, in batches, unless a cycle is running.
    `beat_entry`: sent by beat under that entry name at `beat_sent_at` (epoch seconds); a
    second beat's send of the same tick is skipped (beat_tick_claim)."""
    if beat_entry is not None and not beat_tick_claim(
        entry=beat_entry, interval=beat_entry_interval(entry=beat_entry), sent_at=beat_sent_at
    ):
        logger.info("refresh cycle skipped: another beat already sent %s this tick", beat_entry)
        return RefreshDispatch(skipped_locked=True)
    lock_token = cycle_lock_acquire()
    if lock_token is None:
        logger.info("refresh cycle skipped: the previous one is still running")
        return RefreshDispatch(skipped_locked=True)
    try:
        symbols = tracked_symbols()
        return _dispatch(
            symbols=symbols, kind=RefreshRun.Kind.SCHEDULED, force=False, batch_size=batch_size, lock_token=lock_token
        )
    except BaseException:
        cycle_lock_release(token=lock_token)
        raise


def prices_refresh_force(*, symbols: Sequence[str] | None = None, batch_size: int | None = None) -> RefreshDispatch:
    """A forced refresh of the named symbols (none = every tracked one, unknown ones too).
    It bypasses the quote cache and the cycle lock, but not symbols already being fetched.
    Raises InvalidSymbol for a malformed symbol before anything is dispatched."""
    if symbols:
        wanted = [asset.symbol for asset in assets_ensure(symbols=symbols)]
    else:
        wanted = tracked_symbols(include_unknown=True)
    return _dispatch(symbols=wanted, kind=RefreshRun.Kind.FORCED, force=True, batch_size=batch_size, lock_token=None)


@dataclass
class BatchResult:
    stored: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    from_cache: list[str] = field(default_factory=list)
    # Fetched but older than the quote already stored: that one stands (not failed).
    stale: list[str] = field(default_factory=list)
    published: int = 0
    sources: dict[str, int] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    # The quotes stored (not the stale ones): what the alert check reads (tasks/alerts.py).
    quotes: list[QuoteData] = field(default_factory=list)
    # Seconds per pipeline stage ("fetch", "commit"); the task adds "publish".
    stages: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """The task result: counts for what went well, names for what did not (results are
        kept in Redis and logged, so 50-250 symbol lists per batch would only cost)."""
        return {
            "stored": len(self.stored),
            "changed": len(self.changed),
            "from_cache": len(self.from_cache),
            "stale": len(self.stale),
            "published": self.published,
            "sources": self.sources,
            "retry": self.retry,
            "failed": self.failed,
            "unknown": self.unknown,
            "in_flight": self.in_flight,
        }


def price_batch_fetch(
    *,
    symbols: Sequence[str],
    run_id: int | None,
    force: bool,
    task_id: str,
    attempt: int,
    final_attempt: bool,
) -> BatchResult:
    """Fetch one batch and store it. Symbols still failing for a passing reason (a source
    failed or refused) come back in `retry` unless this is the final attempt, where they are
    recorded as failed. Data every source rejected, and a quote with no asset to store it
    under, will not pass on a retry: failed at once, without holding the batch."""
    result = BatchResult()
    wanted: list[str] = []
    for raw in symbols:
        try:
            wanted.append(symbol_normalize(raw))
        except InvalidSymbol:
            result.failed[str(raw)[:40]] = "malformed symbol"
    wanted = list(dict.fromkeys(wanted))
    token = inflight_token(run_id=run_id, task_id=task_id)
    mine = inflight_claim(symbols=wanted, token=token)
    result.in_flight = [s for s in wanted if s not in set(mine)]
    to_fetch = mine
    if not force and run_id is None:
        # An ad-hoc, unforced fetch is served from the read cache where it can be.
        cached = cache.get_many([quote_cache_key(s) for s in mine])
        result.from_cache = [s for s in mine if quote_cache_key(s) in cached]
        to_fetch = [s for s in mine if quote_cache_key(s) not in cached]
    started = time.perf_counter()
    outcome = data_source_manager().fetch(to_fetch)
    fetched = time.perf_counter()
    stored = quotes_store(quotes=list(outcome.quotes.values()))
    committed = time.perf_counter()
    result.stages = {"fetch": fetched - started, "commit": committed - fetched}
    result.stored, result.changed, result.sources = stored.stored, stored.changed, outcome.source_counts()
    result.stale = stored.stale
    result.quotes = [q for q in outcome.quotes.values() if q.symbol in stored.payloads]
    not_found = [s for s, f in outcome.failures.items() if f.kind is FailureKind.NOT_FOUND]
    newly_unknown = assets_mark_unknown(symbols=not_found, reason="unknown to every source") if not_found else []
    result.unknown = not_found
    settled = {s: f.message for s, f in outcome.failures.items() if f.kind is FailureKind.REJECTED}
    settled |= dict.fromkeys(stored.missing, "quote not stored: no such asset")
    passing = {
        s: f.message
        for s, f in outcome.failures.items()
        if f.kind is not FailureKind.NOT_FOUND and f.kind is not FailureKind.REJECTED
    }
    if final_attempt:
        settled |= passing
    else:
        result.retry = list(passing)
    result.failed.update(settled)
    assets_mark_failing(errors=settled)
    changed = set(stored.changed)
    result.events = [asset_event(stored.payloads[symbol]) for symbol in stored.stored if symbol in changed]
    result.events += [unknown_symbol_event(s) for s in newly_unknown]
    inflight_release(symbols=[s for s in mine if s not in set(result.retry)], token=token)
    if run_id is not None:
        failed = dict(result.failed) | dict.fromkeys(not_found, "unknown to every source")
        refresh_run_record(
            run_id=run_id,
            attempt_key=f"{task_id}:{attempt}",
            succeeded=len(result.stored) + len(result.from_cache) + len(result.stale),
            failed=failed,
            source_counts=result.sources,
            batch_done=not result.retry,
        )
        if attempt == 0:
            cycle_batch_attempted(run_id=run_id, task_id=task_id)
    return result


def price_batch_give_up(*, symbols: Sequence[str], run_id: int | None, task_id: str, attempt: int, reason: str) -> None:
    """Record a batch that will not run again (redelivery cap, time limit on the last try)."""
    failed = {str(s).strip().upper()[:40]: reason for s in symbols}
    assets_mark_failing(errors=failed)
    inflight_release(symbols=list(failed), token=inflight_token(run_id=run_id, task_id=task_id))
    if run_id is not None:
        refresh_run_record(
            run_id=run_id,
            attempt_key=f"{task_id}:{attempt}",
            succeeded=0,
            failed=failed,
            source_counts={},
            batch_done=True,
        )
        cycle_batch_attempted(run_id=run_id, task_id=task_id)


def price_batch_split(*, symbols: Sequence[str], run_id: int | None, task_id: str) -> list[tuple[str, list[str]]]:
    """Turn a batch whose last delivery died with its worker into one batch per symbol (new
    task ids), so a symbol that crashes its worker fails alone: the run counts the extra
    batches, and a run-less batch hands its claims over. Returns (task id, symbols) pairs."""
    singles = [(str(uuid.uuid4()), [str(s)]) for s in dict.fromkeys(symbols)]
    extra = len(singles) - 1
    if run_id is not None and extra > 0:
        RefreshRun.objects.filter(pk=run_id).update(batches_total=F("batches_total") + extra)
        cycle_batches_add(run_id=run_id, count=extra)
    if run_id is None:
        inflight_release(symbols=[s for _, (s,) in singles], token=inflight_token(run_id=None, task_id=task_id))
    return singles
