"""Listen on the channel layer as a Daphne process's hub does: published batches arrive as
one message on the broadcast group; tests wait for the events of one group."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels.layers import get_channel_layer

from backend.realtime.groups import BROADCAST_GROUP


class LayerInbox:
    def __init__(self, layer: Any, channel: str) -> None:
        self.layer, self.channel = layer, channel
        self.pending: list[dict[str, Any]] = []

    @classmethod
    async def open(cls) -> LayerInbox:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(BROADCAST_GROUP, channel)
        return cls(layer, channel)

    async def next(self, group: str, within: float = 15) -> dict[str, Any]:
        """The next event published to `group` (events of other groups are kept for later)."""
        deadline = time.monotonic() + within
        while True:
            for i, event in enumerate(self.pending):
                if event["group"] == group:
                    return self.pending.pop(i)
            message = await asyncio.wait_for(self.layer.receive(self.channel), max(0.05, deadline - time.monotonic()))
            self.pending.extend(message["events"])

    async def close(self) -> None:
        await self.layer.group_discard(BROADCAST_GROUP, self.channel)
        # Only this loop's connections: `close_pools()` closes every loop's, the test
        # process's publishing loop (backend/realtime/publish.py) included, from the wrong loop.
        loop_layer = getattr(self.layer, "_layers", {}).pop(asyncio.get_running_loop(), None)
        if loop_layer is not None:
            await loop_layer.flush()
