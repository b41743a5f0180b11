"""Revaluations coalesced across a price cycle's batches.

Every price-fetch batch asks for a revaluation of the symbols it changed. Run one by one, a
cycle of N batches would revalue a portfolio holding symbols of every batch N times, each run
locking and rewriting the same rows while workers wait. Instead each request adds its symbols
to a pending set, and one runner at a time (a Redis lock) drains everything pending so far;
a request that finds a runner at work returns at once, its symbols taken by that runner.

Rounds of one runner start at least PORTFOLIO_RECALC_INTERVAL apart: during a cycle batches
finish every few milliseconds, and a round per batch or two would spend a worker revaluing
the same big portfolios over and over while the cycle's fetches wait for CPU. The first round
starts at once, so a lone change is revalued without delay. Each round's result goes to the
caller's `on_round` as soon as the round committed (the task publishes its events there), so
the rounds after it do not delay them.

Nothing asked for is lost: the runner moves the pending set to a processing set it deletes
only after the round committed, and a runner that died (lock expired) leaves that set to
the next one. After releasing the lock the runner looks again, so symbols added during its
last round are never stranded.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection

from django.conf import settings
from redis.exceptions import LockError

from backend.core.redis import redis_client, renewing

from . import RevalueResult, portfolios_revalue_for_symbols

PENDING = "tf:recalc:pending"
PROCESSING = "tf:recalc:processing"
LOCK = "tf:recalc:lock"
# Seconds the runner's lock outlives its last renewal (every third of this, from a thread,
# whatever a round's length): a runner killed mid-round holds up the next one this long.
LOCK_TTL = 6

_TAKE = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('SUNIONSTORE', KEYS[2], KEYS[2], KEYS[1])
    redis.call('DEL', KEYS[1])
  end
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
else
  return {}
end
return redis.call('SMEMBERS', KEYS[2])
"""
_REQUEST = """
redis.call('SADD', KEYS[1], unpack(ARGV))
return redis.call('EXISTS', KEYS[2])
"""


def revaluation_request(*, symbols: Collection[str]) -> bool:
    """Add symbols to the pending set; True when no runner is at work, so the caller must
    start one (enqueue the task). A runner at work takes them in a later round: it looks at
    the pending set again after releasing its lock, so a request that saw the lock an
    instant before the release is never stranded. Saves a task per batch during a cycle."""
    if not symbols:
        return False
    runner_at_work = redis_client().register_script(_REQUEST)(keys=[PENDING, LOCK], args=sorted(symbols))
    return not runner_at_work


def portfolios_revalue_coalesced(
    *, symbols: Collection[str], on_round: Callable[[RevalueResult], None] | None = None
) -> RevalueResult | None:
    """Revalue the portfolios holding `symbols` and whatever else is pending, or hand the
    symbols to the runner already at work (returns None then). `on_round` gets each round's
    result once that round committed; the result returned holds the counts of every round
    (and neither their revalued portfolios nor their events)."""
    client = redis_client()
    take = client.register_script(_TAKE)
    if symbols:
        client.sadd(PENDING, *symbols)
    total: RevalueResult | None = None
    # redis-py's Lock: a token per holder, released only by it; not thread-local, so the
    # renewing thread may extend it.
    lock = client.lock(LOCK, timeout=LOCK_TTL, blocking=False, thread_local=False)
    while lock.acquire():
        total = total or RevalueResult()
        try:
            with renewing(lock.reacquire, every=LOCK_TTL / 3, what="the revaluation runner's lock"):
                while taken := take(keys=[PENDING, PROCESSING]):
                    started = time.monotonic()
                    result = portfolios_revalue_for_symbols(symbols=sorted(taken))
                    if on_round is not None:
                        on_round(result)
                    total.counts_add(result)
                    client.delete(PROCESSING)
                    # Let the next round gather what the batches still running add meanwhile.
                    time.sleep(max(0.0, settings.PORTFOLIO_RECALC_INTERVAL - (time.monotonic() - started)))
        finally:
            with contextlib.suppress(LockError):  # lapsed while Redis was away: nothing to free
                lock.release()
        if not client.exists(PENDING):
            break
    return total
