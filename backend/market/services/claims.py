"""Redis coordination for refreshes: the cycle lock and per-symbol in-flight claims.

The cycle lock keeps two scheduled cycles from overlapping, even with two beats running.
Forced refreshes bypass it, but every fetch first claims its symbols: a symbol claimed by a
running cycle (claimed at dispatch, so queued batches count too) is not fetched again by a
forced refresh, and the other way round. Claims carry a token; a redelivered or retried task
presents the same token and keeps its claim. Every claim expires, so a lost task frees its
symbols on its own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from django.conf import settings

from backend.core.redis import redis_client

CYCLE_LOCK_KEY = "tf:lock:price_cycle"

_CLAIM = """
local claimed = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if (not holder) or holder == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'EX', tonumber(ARGV[2]))
    claimed[#claimed + 1] = i
  end
end
return claimed
"""

_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 1
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def inflight_key(symbol: str) -> str:
    return f"tf:inflight:{symbol}"


def inflight_token(*, run_id: int | None, task_id: str | None) -> str:
    return f"run:{run_id}" if run_id is not None else f"task:{task_id or uuid.uuid4().hex}"


def inflight_claim(*, symbols: Sequence[str], token: str, ttl: float | None = None) -> list[str]:
    """Claim the symbols nobody else is fetching; returns the ones now ours."""
    if not symbols:
        return []
    seconds = max(int(ttl if ttl is not None else settings.PRICE_INFLIGHT_TTL), 1)
    script = redis_client().register_script(_CLAIM)
    indexes = script(keys=[inflight_key(s) for s in symbols], args=[token, seconds])
    return [symbols[int(i) - 1] for i in indexes]


def inflight_release(*, symbols: Sequence[str], token: str) -> None:
    if symbols:
        redis_client().register_script(_RELEASE)(keys=[inflight_key(s) for s in symbols], args=[token])


def cycle_lock_acquire() -> str | None:
    """A token if this caller may run a cycle now, None if one is running."""
    token = uuid.uuid4().hex
    if redis_client().set(CYCLE_LOCK_KEY, token, nx=True, ex=settings.PRICE_CYCLE_LOCK_TIMEOUT):
        return token
    return None


_BEAT_TICK = """
local last = redis.call('GET', KEYS[1])
local sent = tonumber(ARGV[1])
if last and sent < tonumber(last) + tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[3]))
return 1
"""


def beat_tick_claim(*, entry: str, interval: float, sent_at: float | None = None) -> bool:
    """True for the first beat send of this entry in a tick. Two beat processes (a deploy
    overlap, beat scaled to 2) each send every entry once per interval, out of phase, so
    the cycle lock alone lets both run when a cycle ends before the other send arrives.
    A send passes only if it was sent at least three quarters of an interval after the last
    send that passed: one beat's own sends (interval apart, a little jitter) always pass,
    the other beat's never do. Send times, not run times: a worker that falls behind runs
    queued sends back to back, and their run times would all look a tick apart."""
    sent = time.time() if sent_at is None else sent_at
    script = redis_client().register_script(_BEAT_TICK)
    keep_ms = max(int(interval * 10_000), 1_000)
    return bool(script(keys=[f"tf:beat-tick:{entry}"], args=[repr(sent), interval * 0.75, keep_ms]))


def cycle_lock_release(*, token: str) -> bool:
    return bool(redis_client().register_script(_UNLOCK)(keys=[CYCLE_LOCK_KEY], args=[token]))


def _cycle_key(run_id: int) -> str:
    return f"tf:cycle:{run_id}"


def cycle_register(*, run_id: int, lock_token: str, batches: int) -> None:
    """Remember which lock a run holds until all its batches have had their first attempt."""
    key = _cycle_key(run_id)
    client = redis_client()
    client.hset(key, mapping={"lock": lock_token, "batches": batches})
    client.expire(key, settings.PRICE_CYCLE_LOCK_TIMEOUT)


def cycle_batch_attempted(*, run_id: int, task_id: str) -> None:
    """A batch of the run finished its first attempt; the last one frees the cycle lock
    (retries then carry on under their symbol claims, so the next cycle skips just those)."""
    client = redis_client()
    key = _cycle_key(run_id)
    info: dict[str, str] = client.hgetall(key)  # type: ignore[assignment]
    if not info:
        return
    client.sadd(f"{key}:done", task_id)
    client.expire(f"{key}:done", settings.PRICE_CYCLE_LOCK_TIMEOUT)
    if int(client.scard(f"{key}:done")) >= int(info["batches"]):
        cycle_lock_release(token=info["lock"])
        client.delete(key, f"{key}:done")


def delivery_count(*, task_id: str, attempt: int) -> int:
    """How many times this attempt of a task has been delivered (redeliveries after a lost
    worker add one each), so a batch that keeps killing its worker stops after a cap."""
    key = f"tf:deliveries:{task_id}:{attempt}"
    client = redis_client()
    count = int(client.incr(key))
    client.expire(key, 86400)
    return count
