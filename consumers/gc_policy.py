"""Garbage collection in a process that serves WebSockets (measured: bench/bench_fanout.py).

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
"""

from __future__ import annotations

import gc
import logging
import time

from django.conf import settings

logger = logging.getLogger(__name__)

QUIET_SECONDS = 1.0  # no batch for this long: a full collection delays nobody's update
_tuned = False


def gc_tune_process() -> None:
    """Freeze what exists now and raise the collection thresholds (once per process)."""
    global _tuned
    if _tuned or not settings.WEBSOCKET_GC_THRESHOLDS:
        return
    _tuned = True
    gc.collect()  # what is garbage already should not be frozen
    gc.freeze()
    gc.set_threshold(*settings.WEBSOCKET_GC_THRESHOLDS)


def gc_collect_if_quiet(*, now: float, last_batch_at: float, last_collect_at: float) -> bool:
    """A full collection now if the process is quiet and the last one is old enough."""
    if not _tuned or now - last_batch_at < QUIET_SECONDS:
        return False
    if now - last_collect_at < settings.WEBSOCKET_GC_COLLECT_INTERVAL:
        return False
    started = time.perf_counter()
    found = gc.collect()
    logger.debug("quiet full collection: %d objects, %.0f ms", found, (time.perf_counter() - started) * 1000)
    return True
