"""The one place Redis clients are built.

`redis_client()` is the process's shared sync client (locks, claims, rate limits, circuit
state, metrics, the registry's read side). redis-py's pool notices a fork and reconnects in
the child, so Celery's prefork pool may inherit it. `redis_connect()` builds a client of its
own for callers that must not share one: an asyncio client for a Daphne process, or a
short-lived probe with tight timeouts for the health check.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings

logger = logging.getLogger(__name__)

# Seconds. A read longer than this is a Redis that stopped answering, not a slow command.
SOCKET_TIMEOUT = 5
CONNECT_TIMEOUT = 3


def redis_connect(
    *,
    url: str | None = None,
    decode_responses: bool = False,
    socket_timeout: float = SOCKET_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
    **options: Any,
) -> redis.Redis:
    """A new sync client (with its own pool) for `url` or REDIS_URL."""
    return redis.Redis.from_url(
        url or settings.REDIS_URL,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        decode_responses=decode_responses,
        **options,
    )


def redis_connect_async(
    *, url: str | None = None, socket_timeout: float = 10, connect_timeout: float = 5, **options: Any
) -> aioredis.Redis:
    """A new asyncio client, for code running in one long-lived event loop."""
    return aioredis.Redis.from_url(
        url or settings.REDIS_URL, socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout, **options
    )


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    """The process's shared client; answers are `str`."""
    return redis_connect(decode_responses=True)


@contextmanager
def renewing(renew: Callable[[], object], *, every: float, what: str) -> Iterator[None]:
    """Call `renew` every `every` seconds from a daemon thread while the block runs: how a
    lock or claim with a short expiry stays held by a live process and lapses soon after a
    dead one (SIGKILL, the OOM killer) stops renewing it. A failed renewal is logged, not
    raised: the hold may lapse, which the holders of these locks tolerate."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                renew()
            except Exception:
                logger.warning("renewing %s failed", what, exc_info=True)

    thread = threading.Thread(target=loop, name=f"tf-renew-{what}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=1)
