"""The one way server code pushes to WebSocket clients.

Tasks call `publish_batch` once per batch with every event of that batch: ONE layer message to
the group every Daphne process's hub joins (the socket edge, `consumers/hub.py`). Sync code publishes through one
event loop per process, running for the life of the process in a daemon thread: a new loop per
`group_send` (what `async_to_sync` does from a Celery task) leaks connections and raises "Event
loop is closed" (channels_redis#125, #332), and even with its pools closed each call paid for a
new loop and a new Redis connection, a third of a fetch batch's publish time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterable

from channels.layers import get_channel_layer

from backend.core.metrics import counter_add

from .events import Event, batch_message
from .groups import BROADCAST_GROUP

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_MESSAGE = 1000
# Seconds a sync caller waits for its batch to reach Redis (redis-py retries a dropped connection).
PUBLISH_TIMEOUT = 10.0


async def _send(events: list[Event]) -> int:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    # One layer message per batch; a huge batch (thousands of portfolio updates) goes as
    # a few messages so no single Redis value grows without bound.
    for start in range(0, len(events), MAX_EVENTS_PER_MESSAGE):
        await layer.group_send(BROADCAST_GROUP, batch_message(events[start : start + MAX_EVENTS_PER_MESSAGE]))
    return len(events)


class _PublisherLoop:
    """The process's publishing loop, started on first use. Per process id: a forked Celery
    pool child inherits the parent's variables but not its threads, so it starts its own."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def get(self) -> asyncio.AbstractEventLoop:
        with self._guard:
            alive = self._thread is not None and self._thread.is_alive()
            if self._loop is None or self._pid != os.getpid() or not alive:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="tf-publisher", daemon=True)
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return self._loop


_publisher = _PublisherLoop()


def publish_batch(events: Iterable[Event]) -> int:
    """Publish every event of one batch in one layer message; returns the number of events.
    For sync code (tasks, views); async code awaits publish_batch_async."""
    batch = list(events)
    if not batch:
        return 0
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        future = asyncio.run_coroutine_threadsafe(_send(batch), _publisher.get())
        try:
            sent = future.result(timeout=PUBLISH_TIMEOUT)
        except BaseException:
            future.cancel()  # a time limit or a Redis that does not answer: do not leave it queued
            raise
        counter_add("messages_published", sent)
        return sent
    raise RuntimeError("publish_batch is for sync code; await publish_batch_async from async code")


async def publish_batch_async(events: Iterable[Event]) -> int:
    """The same from async code running in a long-lived loop (the layer's pools stay open)."""
    batch = list(events)
    if not batch:
        return 0
    return await _send(batch)
