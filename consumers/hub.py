"""The per-process hub: one channel-layer listener per Daphne process, local fan-out.

`publish_batch` sends ONE layer message per batch to the group every process's hub joins
(BROADCAST_GROUP); the hub routes each event to the local connections that subscribe to its
group (asset / portfolio / user) and encodes each payload once. A channel-layer group per
consumer tops out near 3,000 layer messages/s per process and the core layer drops over
capacity silently; one message per batch per process does not (docs/operations.md,
"Fan-out figures").

The hub also keeps the node's registry entry alive (heartbeat), re-joins the broadcast group
on every heartbeat (the core layer forgets members after `group_expiry`, and everything after a
Redis restart), closes idle connections (4408) and re-checks credentials of long ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, cast

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from backend.ops.logging import connection_id_var
from backend.realtime.events import asset_event, portfolio_event
from backend.realtime.groups import BATCH_MESSAGE_TYPE, BROADCAST_GROUP, RESYNC_MESSAGE_TYPE
from backend.realtime.registry import ConnectionInfo
from config.gc_policy import gc_collect_if_quiet, gc_tune_process

from .auth import credentials_check_many
from .outbox import COALESCED_TYPES, encode_data, envelope_prefix
from .registry import NodeRegistry, new_node_id
from .snapshots import Snapshots

if TYPE_CHECKING:
    from backend.realtime.payloads import AssetUpdate, PortfolioUpdate

    from .realtime import RealtimeConsumer

logger = logging.getLogger(__name__)


class Member:
    """What the hub needs of every connection it counts, mixed into each WebSocket consumer
    that lives under the hub's limits (/ws/realtime/, /ws/stock_predictions/): the per-user
    connection limit across processes (registry), the idle close (4408) and the credential
    re-check (4401/4403) in `Hub._sweep_once`. A consumer calls `member_start` first thing in
    `connect`, sets `user_id` once admitted, and implements `close_soon`."""

    scope: dict[str, Any]
    connection_id: str
    hub: Hub | None
    user_id: int
    hub_groups: set[str]
    assets: set[str]
    portfolios: set[int]
    closing: bool
    last_client_message: float
    next_auth_check: float
    connected_at: float

    def member_start(self) -> None:
        self.connection_id = str(uuid.uuid4())
        # Every log record of this connection's task carries its id (backend.ops.logging).
        connection_id_var.set(self.connection_id)
        self.hub = None
        self.hub_groups = set()
        self.assets = set()
        self.portfolios = set()
        self.closing = False
        now = time.monotonic()
        self.connected_at = time.time()
        self.last_client_message = now
        self.next_auth_check = now + settings.WEBSOCKET_AUTH_RECHECK_SECONDS

    def close_soon(self, code: int) -> None:
        """Close from the hub (idle, credentials gone): stop deliveries now, close soon."""
        raise NotImplementedError

    # --- registry view ----------------------------------------------------------------
    def info(self) -> ConnectionInfo:
        user = self.scope["user"]
        return {
            "connection_id": self.connection_id,
            "node": self.hub.node if self.hub else "",
            "user_id": int(user.pk),
            "username": str(user.get_username()),
            "auth": str(self.scope.get("auth_method") or ""),
            "connected_at": self.connected_at,
            "assets": sorted(self.assets),
            "portfolios": sorted(self.portfolios),
        }

    def credentials(self) -> tuple[int, str, str | None, str | None]:
        session = self.scope.get("session")
        return (
            self.user_id,
            str(self.scope.get("auth_method") or ""),
            self.scope.get("auth_token"),
            getattr(session, "session_key", None),
        )


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


class Hub:
    def __init__(self) -> None:
        self.node = new_node_id()
        self.registry = NodeRegistry(self.node)
        self.connections: set[Member] = set()
        self.groups: dict[str, set[RealtimeConsumer]] = {}
        self.layer: Any = None
        self.channel: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._start_lock = asyncio.Lock()
        self.batches_received = 0
        self.last_batch_at = time.monotonic()
        self.last_collect_at = time.monotonic()
        self.snapshots = Snapshots()

    @classmethod
    def current(cls) -> Hub:
        loop = asyncio.get_running_loop()
        hub = _hubs.get(loop)
        if hub is None:
            hub = _hubs[loop] = cls()
        return hub

    # --- connections ------------------------------------------------------------------
    async def register(self, consumer: Member) -> bool:
        """Start the hub if needed, then admit the connection under the per-user limit
        counted over every live process (the connections of every endpoint together). False:
        over the limit. A consumer receiving pushes then joins its groups (`join`)."""
        await self._ensure_started()
        admitted = await self.registry.admit(consumer.info(), settings.WEBSOCKET_MAX_CONNECTIONS_PER_USER)
        if admitted:
            self.connections.add(consumer)
        return admitted

    async def unregister(self, consumer: Member) -> None:
        if consumer not in self.connections:
            return
        self.connections.discard(consumer)
        for group in list(consumer.hub_groups):
            self.leave(group, cast("RealtimeConsumer", consumer))  # only a RealtimeConsumer joins groups
        try:
            await self.registry.release(consumer.info())
        except Exception:
            # The heartbeat rewrites the node's entry after a Redis outage.
            logger.warning("registry release failed for %s", consumer.connection_id, exc_info=True)

    def join(self, group: str, consumer: RealtimeConsumer) -> None:
        self.groups.setdefault(group, set()).add(consumer)
        consumer.hub_groups.add(group)

    def leave(self, group: str, consumer: RealtimeConsumer) -> None:
        members = self.groups.get(group)
        if members is not None:
            members.discard(consumer)
            if not members:
                del self.groups[group]
        consumer.hub_groups.discard(group)

    # --- delivery ---------------------------------------------------------------------
    def dispatch(self, events: list[dict[str, Any]]) -> int:
        """Route one batch to local subscribers; returns frames queued."""
        per_client: dict[RealtimeConsumer, list[tuple[Hashable | None, str]]] = {}
        forget: list[tuple[RealtimeConsumer, str]] = []
        frames = 0
        for event in events:
            self.snapshots.observe(event)
            members = self.groups.get(event["group"])
            if not members:
                continue
            kind = event["type"]
            prefix = envelope_prefix(kind, encode_data(event["data"]), event["timestamp"])
            key = (kind, event["group"]) if kind in COALESCED_TYPES else None
            for consumer in members:
                per_client.setdefault(consumer, []).append((key, prefix))
            frames += len(members)
            data = event["data"]
            if kind == "error" and isinstance(data, dict) and data.get("code") == "unknown_symbol":
                forget.extend((c, str(data.get("symbol", ""))) for c in members)
        for consumer, items in per_client.items():
            consumer.outbox.deliver(items)
        for consumer, symbol in forget:
            consumer.forget_asset(symbol)
        return frames

    # --- background -------------------------------------------------------------------
    async def _ensure_started(self) -> None:
        if self._started:
            return
        async with self._start_lock:
            if self._started:
                return
            self.layer = get_channel_layer()
            if self.layer is None:
                raise RuntimeError("no channel layer configured")
            self.channel = await self.layer.new_channel("push-hub.")
            await self.layer.group_add(BROADCAST_GROUP, self.channel)
            await self.registry.heartbeat([])
            gc_tune_process(settings.WEBSOCKET_GC_THRESHOLDS)
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._listen(), name="push-hub-listen"),
                loop.create_task(self._heartbeat(), name="push-hub-heartbeat"),
                loop.create_task(self._sweep(), name="push-hub-sweep"),
            ]
            self._started = True

    async def stop(self) -> None:
        """Stop the background tasks and leave the broadcast group (tests; a Daphne process
        simply exits and its heartbeat expires)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._started:
            await self.layer.group_discard(BROADCAST_GROUP, self.channel)
            await self.registry.forget_node()
        await self.registry.close()
        self._started = False
        loop = asyncio.get_running_loop()
        if _hubs.get(loop) is self:
            del _hubs[loop]

    async def _listen(self) -> None:
        backoff = 0.5
        lost = False
        while True:
            try:
                if lost:
                    await self._recover()
                    lost = False
                message = await self.layer.receive(self.channel)
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("push hub: layer receive failed; retrying in %.1f s", backoff, exc_info=True)
                lost = True
                await asyncio.sleep(backoff)
                # A failed attempt is one refused connect: cheap, so retry often and be back
                # within ~2 s of Redis.
                backoff = min(backoff * 2, 2)
                continue
            kind = message.get("type")
            if kind == BATCH_MESSAGE_TYPE:
                self.batches_received += 1
                self.last_batch_at = time.monotonic()
                try:
                    self.dispatch(message["events"])
                except Exception:
                    logger.exception("push hub: dispatch failed")
            elif kind == RESYNC_MESSAGE_TYPE:
                try:
                    await self._resnapshot("a publisher lost events")
                except Exception:
                    logger.exception("push hub: resync failed")

    async def _recover(self) -> None:
        """Redis answers again after an outage. A restarted Redis comes back empty: this
        process is no longer in the broadcast group, so re-join now rather than at the next
        heartbeat. Whatever was published meanwhile (a worker can publish before we are back
        in the group) never reached us: send every local subscriber the current snapshot of
        what it subscribes to, the same one a new subscription gets."""
        await self.layer.group_add(BROADCAST_GROUP, self.channel)
        await self.registry.heartbeat([c.info() for c in self.connections])
        await self._resnapshot("the layer is back; re-joined")

    async def _resnapshot(self, why: str) -> None:
        """Send every local subscriber the current snapshot of what it subscribes to, the
        same one a new subscription gets, read afresh: what the hub remembered may have
        missed the lost events."""
        self.snapshots.forget()
        symbols = {s for c in self.connections for s in c.assets}
        assets = await self.snapshots.asset_loader.get_many(symbols)
        events = [asset_event(cast("AssetUpdate", a[1])) for a in assets.values() if a is not None and a[1] is not None]
        owners = {p: c.user_id for c in self.connections for p in c.portfolios}
        portfolios = await self.snapshots.portfolio_loader.get_many(owners)
        events += [
            portfolio_event(cast("PortfolioUpdate", p[1]))
            for pid, p in portfolios.items()
            if p is not None and p[0] == owners[pid]
        ]
        frames = self.dispatch([dict(e) for e in events])
        logger.warning("push hub: %s: re-sent %d snapshots (%d frames)", why, len(events), frames)

    async def _heartbeat(self) -> None:
        interval = max(1.0, settings.WEBSOCKET_NODE_TTL / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.registry.heartbeat([c.info() for c in self.connections])
                await self.layer.group_add(BROADCAST_GROUP, self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("push hub: heartbeat failed", exc_info=True)

    async def _sweep(self) -> None:
        timeout: float = settings.WEBSOCKET_TIMEOUT
        recheck: float = settings.WEBSOCKET_AUTH_RECHECK_SECONDS
        tick = max(0.2, min(1.0, timeout / 4, recheck / 4))
        while True:
            await asyncio.sleep(tick)
            try:
                now = time.monotonic()
                await self._sweep_once(now, timeout, recheck)
                self.snapshots.prune()
                if gc_collect_if_quiet(now=now, last_batch_at=self.last_batch_at, last_collect_at=self.last_collect_at):
                    self.last_collect_at = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("push hub: sweep failed", exc_info=True)

    async def _sweep_once(self, now: float, idle_limit: float, recheck: float) -> None:
        due: list[Member] = []
        for consumer in list(self.connections):
            if consumer.closing:
                continue
            if now - consumer.last_client_message > idle_limit:
                consumer.close_soon(4408)
            elif now >= consumer.next_auth_check:
                consumer.next_auth_check = now + recheck
                due.append(consumer)
        if due:
            verdicts = await database_sync_to_async(credentials_check_many)([c.credentials() for c in due])
            for consumer, code in zip(due, verdicts, strict=True):
                if code is not None:
                    consumer.close_soon(code)
