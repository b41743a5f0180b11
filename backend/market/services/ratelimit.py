"""A per-source requests-per-minute limit shared by every worker process.

A sliding 60-second window kept in a Redis sorted set, checked and updated by one Lua script
(atomic across processes). Redis's clock is the clock, so workers on different hosts agree.
"""

from __future__ import annotations

import uuid

import redis

WINDOW_SECONDS = 60

_ACQUIRE = """
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local window_us = tonumber(ARGV[2]) * 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_us - window_us)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now_us, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 1000 + 1000)
  return 1
end
return 0
"""


def rate_limit_key(source: str) -> str:
    return f"tf:ratelimit:{source}"


class SharedRateLimit:
    """`acquire()` is True when one more request fits in the last minute's budget."""

    def __init__(self, client: redis.Redis, *, source: str, per_minute: int) -> None:
        self.client = client
        self.source = source
        self.per_minute = per_minute
        self._script = client.register_script(_ACQUIRE)

    def acquire(self) -> bool:
        if self.per_minute <= 0:  # 0 = unlimited
            return True
        token = uuid.uuid4().hex
        return bool(self._script(keys=[rate_limit_key(self.source)], args=[self.per_minute, WINDOW_SECONDS, token]))

    def used(self) -> int:
        """Requests counted in the current window (for the status API)."""
        key = rate_limit_key(self.source)
        seconds, micros = self.client.time()
        now_us = int(seconds) * 1_000_000 + int(micros)
        return int(self.client.zcount(key, now_us - WINDOW_SECONDS * 1_000_000, "+inf"))
