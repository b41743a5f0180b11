"""Re-derivations of daily values, coalesced (docs/returns.md, "What re-derives when").

A back-dated transaction or a history backfill asks for a portfolio's rows to be derived
again from a day on. A CSV import or a backfill of a symbol many portfolios hold would ask
hundreds of times in a burst; each request instead records (portfolio, earliest day) in a
Redis hash, keeping the earliest day per portfolio, and only the request that finds no
runner scheduled asks its caller to enqueue one. The runner drops the "scheduled" mark
before it takes the hash, so a request arriving while it works schedules the next runner.

Nothing asked for is lost: the runner moves the pending entries to a processing hash and
removes each only after deriving it (and only if no earlier day was asked for meanwhile); a
runner that died leaves them to the next.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from backend.core.redis import redis_client
from backend.performance.selectors import portfolios_touching
from backend.performance.services.daily_values import daily_values_derive

PENDING = "tf:perf:pending"
PROCESSING = "tf:perf:processing"
SCHEDULED = "tf:perf:scheduled"
# A runner that never started (its message lost) stops blocking new ones after this long.
SCHEDULED_TTL = 600
# A runner's share of work, well inside the task's soft time limit (tasks/performance.py).
BUDGET_SECONDS = 180.0


def _keep_earliest(key: str, field: str, day: str) -> str:
    """Lua: set the hash's field to the day unless it holds an earlier one (ISO dates)."""
    return f"""
    local current = redis.call('HGET', {key}, {field})
    if not current or {day} < current then redis.call('HSET', {key}, {field}, {day}) end"""


_REQUEST = f"""
for i = 1, #ARGV, 2 do{_keep_earliest("KEYS[1]", "ARGV[i]", "ARGV[i + 1]")}
end
return redis.call('SET', KEYS[2], '1', 'NX', 'EX', {SCHEDULED_TTL}) and 1 or 0
"""

_TAKE = f"""
local pending = redis.call('HGETALL', KEYS[1])
for i = 1, #pending, 2 do{_keep_earliest("KEYS[2]", "pending[i]", "pending[i + 1]")}
end
redis.call('DEL', KEYS[1])
return redis.call('HGETALL', KEYS[2])
"""

_DONE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
"""


def rederive_request(*, since_by_portfolio: Mapping[int, date]) -> bool:
    """Ask for these portfolios' rows from these days on; True when the caller must enqueue
    a runner (none is scheduled)."""
    if not since_by_portfolio:
        return False
    args: list[str] = []
    for portfolio_id, since in since_by_portfolio.items():
        args += [str(portfolio_id), since.isoformat()]
    return bool(redis_client().register_script(_REQUEST)(keys=[PENDING, SCHEDULED], args=args))


def rederive_request_symbols(*, symbols: Iterable[str], since: date) -> bool:
    """A backfill of these symbols' history from `since`: every portfolio that holds one, or
    converts through one (a pair), is re-derived from that day."""
    ids = portfolios_touching(symbols=symbols)
    return rederive_request(since_by_portfolio=dict.fromkeys(ids, since))


@dataclass(frozen=True)
class Rederived:
    portfolios: int  # derived by this run
    left: int  # asked for and not reached within the budget (the next runner takes them)


def rederive_pending(*, today: date | None = None, budget_seconds: float = BUDGET_SECONDS) -> Rederived:
    """Derive what was asked for so far (through `today`: the UTC day when not given), for
    about `budget_seconds` at most: a backfill touching thousands of portfolios is worked
    through by runner after runner, each within the task's time limit."""
    client = redis_client()
    client.delete(SCHEDULED)
    taken = client.register_script(_TAKE)(keys=[PENDING, PROCESSING])
    done = client.register_script(_DONE)
    entries = list(zip(taken[::2], taken[1::2], strict=True))
    deadline = time.monotonic() + budget_seconds
    count = 0
    for portfolio_id, since in entries:
        if time.monotonic() > deadline:
            break
        daily_values_derive(portfolio_id=int(portfolio_id), since=date.fromisoformat(since), today=today)
        done(keys=[PROCESSING], args=[portfolio_id, since])
        count += 1
    return Rederived(count, len(entries) - count)
