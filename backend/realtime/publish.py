"""The one way server code pushes to WebSocket clients.

Tasks call `publish_batch` once per batch with every event of that batch: ONE layer message
to the group every Daphne process's hub joins (the socket edge, `consumers/hub.py`).

Sync code publishes through one event loop per process, running for the life of the process
in a daemon thread: a new loop per `group_send` (what `async_to_sync` does from a Celery
task) leaks connections and raises "Event loop is closed" (channels_redis#125, #332), and
each call paid for a new loop and a new Redis connection.

Nothing stored is dropped on the way (docs/operations.md, "Faults and recovery"):
- a send that fails is retried once on fresh connections (after a Redis restart the pool
  still holds connections to the old server);
- what still cannot be sent is kept in this process, latest event per subject, and sent as
  soon as Redis answers again; if more piles up than PUBLISH_PENDING_MAX, the oldest is
  dropped and every hub is told to resync its clients (they get snapshots) instead.
Each outcome is counted in /metrics (publish_retries, publish_deferred, publish_recovered,
publish_resyncs).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
import os
import threading
from collections.abc import Hashable, Iterable
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.utils.module_loading import import_string

from backend.core.metrics import counter_add

from .events import Event, batch_message
from .groups import BROADCAST_GROUP, RESYNC_MESSAGE_TYPE

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_MESSAGE = 1000
# Seconds: one attempt's bound (a Redis that accepts but never answers), and how long a sync
# caller waits in all (two attempts, then the events are kept for later).
ATTEMPT_TIMEOUT = 4.0
PUBLISH_TIMEOUT = 10.0
PUBLISH_PENDING_MAX = 10_000
RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0)  # between flush attempts while Redis is away; the last repeats

# Subjects whose latest event makes earlier ones of the same subject worthless.
_LATEST_WINS = frozenset({"asset_update", "portfolio_update", "position_update"})
_unique = itertools.count()


def _subject(event: Event) -> Hashable:
    if event["type"] in _LATEST_WINS:
        return (event["type"], event["group"], event["data"].get("symbol"), event["data"].get("portfolio_id"))
    return next(_unique)


async def _group_send(layer: Any, events: list[Event]) -> int:
    # One layer message per batch; a huge batch (thousands of portfolio updates) goes as a
    # few messages so no single Redis value grows without bound.
    for start in range(0, len(events), MAX_EVENTS_PER_MESSAGE):
        await layer.group_send(BROADCAST_GROUP, batch_message(events[start : start + MAX_EVENTS_PER_MESSAGE]))
    return len(events)


def _own_layer() -> Any:
    """A layer instance of the publisher's own: its connections can be dropped and rebuilt
    without touching the ones a Daphne process's consumers receive on. Bounded reads: the
    consumers' layer waits forever on purpose (blocking pops), a publisher must not."""
    config: dict[str, Any] = settings.CHANNEL_LAYERS["default"]
    options: dict[str, Any] = dict(config.get("CONFIG", {}))
    hosts = options.get("hosts")
    if hosts and all(isinstance(h, dict) for h in hosts):
        options["hosts"] = [{**h, "socket_timeout": ATTEMPT_TIMEOUT} for h in hosts]
    return import_string(config["BACKEND"])(**options)


async def _count(name: str, amount: int) -> None:
    # Off the loop: recording talks to Redis, which may be the thing that is away.
    await asyncio.to_thread(counter_add, name, amount)


class _Publisher:
    """The process's publishing loop and what it still owes. Per process id: a forked Celery
    pool child inherits the parent's variables but not its threads, so it starts its own."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._reset_state()

    def _reset_state(self) -> None:
        self.layer: Any = None
        self.layer_config: Any = None
        self.pending: dict[Hashable, Event] = {}
        self.resync_owed = False
        self.flusher: asyncio.Task[None] | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._guard:
            alive = self._thread is not None and self._thread.is_alive()
            if self._loop is None or self._pid != os.getpid() or not alive:
                self._reset_state()
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="tf-publisher", daemon=True)
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return self._loop

    def _current_layer(self) -> Any:
        # Rebuilt when the settings change (tests point the layer at a throwaway Redis).
        config = settings.CHANNEL_LAYERS["default"]
        if self.layer is None or self.layer_config != config:
            self.layer, self.layer_config = _own_layer(), copy.deepcopy(config)
        return self.layer

    async def _send(self, events: list[Event]) -> int:
        layer = self._current_layer()
        return await asyncio.wait_for(_group_send(layer, events), ATTEMPT_TIMEOUT)

    async def _drop_connections(self) -> None:
        layer, self.layer = self.layer, None
        if layer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(layer.close_pools(), 1.0)

    async def publish(self, events: list[Event]) -> int:
        """Send now (one retry on fresh connections) or keep for later; returns events sent now."""
        if self.pending:
            # Earlier events are still owed: these go after them, in order.
            self.keep(events)
            await self._flush_once()
            return 0
        for attempt in range(2):
            try:
                return await self._send(events)
            except Exception as error:
                await self._drop_connections()
                if attempt == 0:
                    await _count("publish_retries", 1)
                    logger.info("publishing %d events failed (%s); retrying on a fresh connection", len(events), error)
                else:
                    logger.warning("publishing %d events failed again (%s); kept for later", len(events), error)
        self.keep(events)
        return 0

    def keep(self, events: list[Event]) -> None:
        """Owe these events (latest per subject); start the flusher. Runs on the loop."""
        for event in events:
            subject = _subject(event)
            self.pending.pop(subject, None)  # re-inserted at the end: order follows the latest
            self.pending[subject] = event
        while len(self.pending) > PUBLISH_PENDING_MAX:
            self.pending.pop(next(iter(self.pending)))
            self.resync_owed = True
        asyncio.get_running_loop().create_task(_count("publish_deferred", len(events)))
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.get_running_loop().create_task(self._flush_until_done(), name="tf-publish-flush")

    async def _flush_once(self) -> bool:
        owed = list(self.pending.values())
        try:
            if owed:
                await self._send(owed)
            if self.resync_owed:
                await self._send_resync()
        except Exception:
            await self._drop_connections()
            return False
        for event in owed:
            subject = _subject(event)
            if self.pending.get(subject) is event:
                del self.pending[subject]
        if owed:
            await _count("publish_recovered", len(owed))
            logger.warning("published %d events kept while Redis was away", len(owed))
        return not self.pending and not self.resync_owed

    async def _send_resync(self) -> None:
        message = {"type": RESYNC_MESSAGE_TYPE}
        await asyncio.wait_for(self._current_layer().group_send(BROADCAST_GROUP, message), ATTEMPT_TIMEOUT)
        self.resync_owed = False
        await _count("publish_resyncs", 1)
        logger.warning("told every hub to resync its clients: events were dropped while Redis was away")

    async def _flush_until_done(self) -> None:
        for delay in itertools.chain(RETRY_DELAYS, itertools.repeat(RETRY_DELAYS[-1])):
            await asyncio.sleep(delay)
            if await self._flush_once():
                return

    def owed(self) -> int:
        """Events kept for later in this process (tests, status)."""
        return len(self.pending)


_publisher = _Publisher()


def publish_batch(events: Iterable[Event]) -> int:
    """Publish every event of one batch in one layer message; returns the events sent now
    (the rest are kept and sent once Redis answers). For sync code (tasks, views)."""
    batch = list(events)
    if not batch:
        return 0
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("publish_batch is for sync code; await publish_batch_async from async code")
    loop = _publisher.loop()
    future = asyncio.run_coroutine_threadsafe(_publisher.publish(batch), loop)
    try:
        sent = future.result(timeout=PUBLISH_TIMEOUT)
    except BaseException:
        # A time limit, or a Redis that does not answer: owe the events rather than lose them.
        future.cancel()
        loop.call_soon_threadsafe(_publisher.keep, batch)
        raise
    if sent:
        counter_add("messages_published", sent)
    return sent


def publish_pending() -> int:
    """Events this process still owes its subscribers."""
    return _publisher.owed()


async def publish_batch_async(events: Iterable[Event]) -> int:
    """For async code running in a long-lived loop (the layer's pools stay open). Raises on
    failure: an async caller (a test, a hub) decides itself."""
    batch = list(events)
    if not batch:
        return 0
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    return await _group_send(layer, batch)
