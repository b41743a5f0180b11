"""Ground truth for "published": a member of the broadcast group every hub joins, in the
soak's own process, recording every asset_update each published batch carried and every
resync message. It re-joins after a Redis restart as the hubs do (a restarted Redis has
no groups); what is published in the second before it is back is counted as unseen."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from datetime import datetime
from typing import Any

from channels.layers import get_channel_layer

from backend.realtime.groups import BATCH_MESSAGE_TYPE, BROADCAST_GROUP, RESYNC_MESSAGE_TYPE

logger = logging.getLogger(__name__)
REJOIN_SECONDS = 1.0


def _epoch(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(datetime.fromisoformat(str(value)).timestamp())


class PublishTap:
    def __init__(self) -> None:
        self.published: dict[tuple[str, int], float] = {}
        self.batches = 0
        self.resyncs: list[float] = []
        self.outages: list[tuple[float, float]] = []  # receive failed .. joined again
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="soak-tap", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    async def _main(self) -> None:
        layer = get_channel_layer()
        assert layer is not None
        channel = await layer.new_channel("soak-tap.")
        rejoin = asyncio.create_task(self._rejoin_forever(layer, channel))
        # Never time a receive out: a receive cancelled mid-pop loses its message.
        receiver = asyncio.create_task(self._receive_forever(layer, channel))
        # `_stop` is set from another thread: poll it.
        while not self._stop.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        rejoin.cancel()
        receiver.cancel()
        with contextlib.suppress(Exception):
            await layer.group_discard(BROADCAST_GROUP, channel)

    async def _receive_forever(self, layer: Any, channel: str) -> None:
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                lost = time.time()
                await self._join(layer, channel)
                self.outages.append((lost, time.time()))
                continue
            self._record(message)

    async def _join(self, layer: Any, channel: str) -> None:
        while not self._stop.is_set():
            try:
                await layer.group_add(BROADCAST_GROUP, channel)
                return
            except Exception:
                await asyncio.sleep(0.2)

    async def _rejoin_forever(self, layer: Any, channel: str) -> None:
        # A restarted Redis forgets the group before a receive fails here: join again often.
        while True:
            with contextlib.suppress(Exception):
                await layer.group_add(BROADCAST_GROUP, channel)
            await asyncio.sleep(REJOIN_SECONDS)

    def _record(self, message: dict[str, Any]) -> None:
        now = time.time()
        if message.get("type") == RESYNC_MESSAGE_TYPE:
            self.resyncs.append(now)
            return
        if message.get("type") != BATCH_MESSAGE_TYPE:
            return
        self.batches += 1
        for event in message.get("events", []):
            if event.get("type") == "asset_update":
                data = event["data"]
                self.published.setdefault((data["symbol"], _epoch(data["last_updated"])), now)
