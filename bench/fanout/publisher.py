"""The fan-out benchmark's publisher process: every symbol updated once a second, in batches
spread evenly over the second, through publish_batch (the hub) or a group_send per symbol (bare)."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.fanout.processes import bench_env


def publisher_main(
    db: str, layer: str, style: str, symbols: list[str], duration: float, batch_size: int, out: Any
) -> None:
    os.environ.update(bench_env(Path(db), layer))
    import django

    django.setup()
    from decimal import Decimal

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from backend.realtime.events import asset_event
    from backend.realtime.groups import asset_group
    from backend.realtime.publish import publish_batch

    def payload(symbol: str, tick: int) -> Any:
        return {
            "symbol": symbol,
            "price": Decimal(100 + tick) + Decimal("0.123456"),
            "change": Decimal("1.25"),
            "change_percent": Decimal("0.81"),
            "volume": 1_000_000 + tick,
            "high": Decimal("101.5"),
            "low": Decimal("98.25"),
            "market_cap": 2_400_000_000_000,
            "previous_close": Decimal("99.0"),
            "last_updated": datetime.now().isoformat(),
            "source": "simulated",
        }

    async def bare_send(events: list[Any]) -> None:
        layer_ = get_channel_layer()
        for event in events:
            await layer_.group_send(
                asset_group(event["data"]["symbol"]),
                {"type": "asset.update", "data": event["data"], "timestamp": event["timestamp"]},
            )
        loop_layer = getattr(layer_, "_layers", {}).pop(asyncio.get_running_loop(), None)
        if loop_layer is not None:
            await loop_layer.flush()

    def send(events: list[Any]) -> None:
        if style == "hub":
            publish_batch(events)
        else:
            async_to_sync(bare_send)(events)

    # Warm up (imports, first connection) on a symbol nobody subscribes to.
    send([asset_event(payload("WARMUP", 0))])
    batches = [symbols[i : i + batch_size] for i in range(0, len(symbols), batch_size)]
    slot = 1.0 / len(batches)
    counts = dict.fromkeys(symbols, 0)
    late = 0
    start = time.monotonic()
    for tick in range(int(duration)):
        for b, batch in enumerate(batches):
            due = start + tick + b * slot
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                late += 1
            send([asset_event(payload(s, tick)) for s in batch])
            for s in batch:
                counts[s] += 1
    out.put({"counts": counts, "late_batches": late, "seconds": time.monotonic() - start})
