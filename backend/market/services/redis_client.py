"""The process's Redis client for locks, rate limits, circuit state and claims.

redis-py's pool notices a fork and reconnects in the child, so Celery's prefork pool may
inherit this module safely.
"""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=3, decode_responses=True)
