"""Redis coordination for refreshes: the cycle lock and per-symbol in-flight claims. Every
lock and claim a cycle takes, and how long it lives, is decided here.

The cycle lock keeps two scheduled cycles from overlapping, even with two beats running.
Forced refreshes bypass it, but every fetch first claims its symbols: a symbol claimed by a
run (claimed at dispatch, so queued batches count too) is not fetched again by another run.
Claims carry a token; a redelivered or retried task presents the same token and keeps them.

Lifetimes are short (PRICE_INFLIGHT_TTL, 6 s) and kept alive by whoever works under them:
a running batch renews its own claims, and the claims and the cycle lock of its whole run
(`claims_kept`), once per run every third of the TTL. A worker killed mid-batch (SIGKILL, the
OOM killer) renews nothing, so what it held frees itself within the TTL of the run's last
live work, never minutes later. A run's batches still waiting in the queue while no batch
of the run executes are not kept alive: a later cycle may then dispatch their symbols again,
and whichever batch runs first fetches them (the other finds them claimed).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.conf import settings

from backend.core.redis import redis_client, renewing

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


def claim_ttl() -> int:
    """Seconds a claim or the cycle lock outlives its last renewal."""
    return max(int(settings.PRICE_INFLIGHT_TTL), 2)


def cycle_lock_acquire() -> str | None:
    """A token if this caller may run a cycle now, None if one is running. The lock lives
    as long as the run's batches renew it (`claims_kept`)."""
    token = uuid.uuid4().hex
    if redis_client().set(CYCLE_LOCK_KEY, token, nx=True, ex=claim_ttl()):
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


def cycle_register(*, run_id: int, lock_token: str | None, batches: int, symbols: Sequence[str]) -> None:
    """Remember a run: which lock it holds (None: a forced run holds none) until all its
    batches have had their first attempt, and its symbols, whose claims its batches renew."""
    key = _cycle_key(run_id)
    pipe = redis_client().pipeline(transaction=False)
    pipe.hset(key, mapping={"lock": lock_token or "", "batches": batches})
    pipe.expire(key, settings.PRICE_CYCLE_LOCK_TIMEOUT)
    if symbols:
        pipe.sadd(f"{key}:symbols", *symbols)
        pipe.expire(f"{key}:symbols", settings.PRICE_CYCLE_LOCK_TIMEOUT)
    pipe.execute()


def cycle_batches_add(*, run_id: int, count: int) -> None:
    """A batch of the run became `count + 1` batches (split after it killed its worker)."""
    key = _cycle_key(run_id)
    client = redis_client()
    if client.exists(key):
        client.hincrby(key, "batches", count)


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
        if info.get("lock"):
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


# A batch's own claims: renewed while they hold its token.
_RENEW_OWN = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2]) end
end
return 1
"""

# A run's claims and its cycle lock, renewed by the first of its batches to come by in each
# renewal interval (KEYS: run record, its symbols, the cycle lock, the interval marker).
_RENEW_RUN = """
if not redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[3]) then return 0 end
local lock = redis.call('HGET', KEYS[1], 'lock')
if lock and lock ~= '' and redis.call('GET', KEYS[3]) == lock then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
for _, symbol in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local key = ARGV[4] .. symbol
  if redis.call('GET', key) == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2]) end
end
return 1
"""


def claims_renew(*, symbols: Sequence[str], token: str, run_id: int | None, lock_token: str | None = None) -> None:
    """One renewal: this batch's claims, its run's (once per interval across all batches),
    and the cycle lock (of its run, or `lock_token` for a caller that holds it directly)."""
    client = redis_client()
    ttl_ms = claim_ttl() * 1000
    if symbols:
        client.register_script(_RENEW_OWN)(keys=[inflight_key(s) for s in symbols], args=[token, ttl_ms])
    if run_id is not None:
        key = _cycle_key(run_id)
        client.register_script(_RENEW_RUN)(
            keys=[key, f"{key}:symbols", CYCLE_LOCK_KEY, f"{key}:renewed"],
            args=[inflight_token(run_id=run_id, task_id=None), ttl_ms, ttl_ms // 3, inflight_key("")],
        )
    if lock_token is not None:
        client.register_script(_RENEW_OWN)(keys=[CYCLE_LOCK_KEY], args=[lock_token, ttl_ms])


@contextmanager
def claims_kept(
    *, symbols: Sequence[str], token: str, run_id: int | None, lock_token: str | None = None
) -> Iterator[None]:
    """Renew these claims (and the run's, and the lock) every third of the TTL while the
    block runs: a process that dies stops renewing, and what it held frees itself within
    the TTL."""

    def renew() -> None:
        claims_renew(symbols=symbols, token=token, run_id=run_id, lock_token=lock_token)

    with renewing(renew, every=claim_ttl() / 3, what=f"{len(symbols)} claims"):
        yield
