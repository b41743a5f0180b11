"""Garbage collection in our long-lived processes: Daphne's (measured: bench/bench_fanout.py)
and each Celery worker process (bench/bench_valuation.py).

With 1,000 connections a Daphne process tracks hundreds of thousands of container objects
(consumers, Twisted and autobahn protocols, outboxes), and CPython's automatic collection of
the oldest generation scans all of them: a 110-180 ms pause in which no frame goes out. At
1,000 clients that one pause made the p99 latency 190-240 ms; with it out of the way, 50 ms.

So, once per process, when the hub starts: everything alive then (Django, the app, the
modules) is frozen out of every future scan, and the thresholds make automatic full
collections rare. The hub then runs the full collection itself when the process is quiet (no
batch for a moment, e.g. between refresh cycles), at most every WEBSOCKET_GC_COLLECT_INTERVAL
seconds, so the cycles left by closed connections are still reclaimed; under a flow that never
pauses, the automatic collection still comes, only rarely.

A worker process freezes what it has once it starts (worker_init, and again in each pool
process after the fork: config/celery.py). A revaluation that reads 20,000 moved positions
allocates 150,000 objects; each gen-2 collection they set off scanned the whole Django heap,
and the reading took 60-180 ms instead of 40-55. Workers use milder thresholds
(WORKER_GC_THRESHOLDS) and no collection of their own: between tasks nothing waits on them,
and with the startup heap frozen a full collection scans only what tasks left.
"""

from __future__ import annotations

import gc
import logging
import os
import time

from django.conf import settings

logger = logging.getLogger(__name__)

QUIET_SECONDS = 1.0  # no batch for this long: a full collection delays nobody's update
_tuned_pid: int | None = None  # the process that tuned (a forked child tunes again)


def gc_tune_process(thresholds: tuple[int, ...]) -> None:
    """Freeze what exists now and raise the collection thresholds (once per process; empty
    thresholds: leave CPython's)."""
    global _tuned_pid
    if _tuned_pid == os.getpid() or not thresholds:
        return
    _tuned_pid = os.getpid()
    gc.collect()  # what is garbage already should not be frozen
    gc.freeze()
    gc.set_threshold(*thresholds)


def gc_collect_if_quiet(*, now: float, last_batch_at: float, last_collect_at: float) -> bool:
    """A full collection now if the process is quiet and the last one is old enough."""
    if _tuned_pid != os.getpid() or now - last_batch_at < QUIET_SECONDS:
        return False
    if now - last_collect_at < settings.WEBSOCKET_GC_COLLECT_INTERVAL:
        return False
    started = time.perf_counter()
    found = gc.collect()
    logger.debug("quiet full collection: %d objects, %.0f ms", found, (time.perf_counter() - started) * 1000)
    return True
