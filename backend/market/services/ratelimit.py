"""A per-source requests-per-minute limit shared by every worker process.

The `limits` library's moving window in Redis (one Lua script checks and records a request
atomically across processes), on the process's Redis connection pool. Its clock is the
caller's, so hosts must keep their clocks in step (NTP); a 60-second window tolerates the
milliseconds they differ by.
"""

from __future__ import annotations

from functools import cache

import redis
from limits import RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

KEY_PREFIX = "tf:ratelimit"


@cache
def _limiter(pool: redis.ConnectionPool) -> MovingWindowRateLimiter:
    storage = RedisStorage("redis://", connection_pool=pool, key_prefix=KEY_PREFIX)
    return MovingWindowRateLimiter(storage)


class SharedRateLimit:
    """`acquire()` is True when one more request fits in the last minute's budget."""

    def __init__(self, client: redis.Redis, *, source: str, per_minute: int) -> None:
        self.source = source
        self.per_minute = per_minute
        self._item = RateLimitItemPerMinute(max(per_minute, 1))
        self._limiter = _limiter(client.connection_pool)

    def acquire(self) -> bool:
        if self.per_minute <= 0:  # 0 = unlimited
            return True
        return self._limiter.hit(self._item, self.source)

    def used(self) -> int:
        """Requests counted in the current window (for the status API)."""
        if self.per_minute <= 0:
            return 0
        stats = self._limiter.get_window_stats(self._item, self.source)
        return self.per_minute - stats.remaining
