"""Publishing survives Redis going away: a stale connection is replaced and the send retried;
events that cannot be sent are kept and sent once Redis answers; an overflow becomes a resync
message to every hub. Against a real redis-server that the test stops and starts again with
its data kept, so the listener's group membership survives and what arrives is provable."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from channels.layers import get_channel_layer

from backend.realtime import publish
from backend.realtime.events import Event, asset_event
from backend.realtime.groups import BATCH_MESSAGE_TYPE, BROADCAST_GROUP, RESYNC_MESSAGE_TYPE
from config.embedded import _redis_server_binary
from tests.live import free_port


class KeptRedis:
    """A redis-server whose data survives a restart (SAVE before each stop)."""

    def __init__(self, directory: Path) -> None:
        self.port, self.directory = free_port(), directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [_redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--dbfilename", "kept.rdb", "--save", "", "--appendonly", "no"]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=0.5).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            redis.Redis.from_url(self.url).save()
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def kept_redis(tmp_path, settings) -> Iterator[KeptRedis]:
    server = KeptRedis(tmp_path)
    server.start()
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    layers["default"]["CONFIG"]["hosts"][0]["address"] = server.url
    settings.CHANNEL_LAYERS = layers
    yield server
    if server.proc is None:
        server.start()  # the publisher may still owe events: let it finish before the next test
    wait_until_nothing_owed(10)
    server.stop()


def price(symbol: str, value: str) -> Event:
    return asset_event({
        "symbol": symbol, "price": Decimal(value), "change": None, "change_percent": None, "volume": None,
        "high": None, "low": None, "market_cap": None, "previous_close": None,
        "last_updated": "2026-12-05T16:00:00Z", "source": "simulated",
    })  # fmt: skip


async def listener() -> tuple[Any, str]:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(BROADCAST_GROUP, channel)
    return layer, channel


async def reconnect(layer: Any) -> None:
    """Drop this loop's layer connections to the server that stopped (the listener's own)."""
    loop_layer = layer._layers.pop(asyncio.get_running_loop(), None)
    if loop_layer is not None:
        with contextlib.suppress(Exception):
            await loop_layer.flush()


async def received(layer: Any, channel: str, within: float) -> list[dict[str, Any]]:
    await reconnect(layer)
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            messages.append(await asyncio.wait_for(layer.receive(channel), max(0.05, deadline - time.monotonic())))
        except TimeoutError:
            break
    return messages


def wait_until_nothing_owed(within: float) -> None:
    deadline = time.monotonic() + within
    while publish.publish_pending() and time.monotonic() < deadline:
        time.sleep(0.05)


def prices_in(messages: list[dict[str, Any]]) -> list[tuple[str, float]]:
    return [(e["data"]["symbol"], e["data"]["price"]) for m in messages if m["type"] == BATCH_MESSAGE_TYPE
            for e in m["events"]]  # fmt: skip


def test_events_published_while_redis_is_down_are_sent_once_it_answers(kept_redis):
    async def scenario() -> tuple[list[dict[str, Any]], int, float]:
        layer, channel = await listener()
        # A first publish leaves the publisher holding connections to this server.
        assert await asyncio.to_thread(publish.publish_batch, [price("AAPL", "1")]) == 1
        await asyncio.to_thread(kept_redis.stop)
        sent_while_down = await asyncio.to_thread(publish.publish_batch, [price("AAPL", "2"), price("MSFT", "3")])
        owed = publish.publish_pending()
        await asyncio.to_thread(kept_redis.start)
        back = time.monotonic()
        await asyncio.to_thread(wait_until_nothing_owed, 10)
        delay = time.monotonic() - back
        return await received(layer, channel, 1.0), sent_while_down + 10 * owed, delay

    messages, down_and_owed, delay = asyncio.run(scenario())
    assert down_and_owed == 20  # nothing sent while down, both events owed
    assert prices_in(messages) == [("AAPL", 1.0), ("AAPL", 2.0), ("MSFT", 3.0)]
    assert delay < 5, f"kept events took {delay:.1f} s after Redis answered"


def test_a_stale_connection_after_a_restart_is_replaced_and_the_publish_goes_through(kept_redis):
    async def scenario() -> list[dict[str, Any]]:
        layer, channel = await listener()
        assert await asyncio.to_thread(publish.publish_batch, [price("AAPL", "1")]) == 1
        await asyncio.to_thread(kept_redis.stop)
        await asyncio.to_thread(kept_redis.start)
        # The publisher's pool still holds the connection to the server that stopped.
        assert await asyncio.to_thread(publish.publish_batch, [price("AAPL", "5")]) == 1
        return await received(layer, channel, 1.0)

    assert prices_in(asyncio.run(scenario())) == [("AAPL", 1.0), ("AAPL", 5.0)]


def test_more_kept_than_the_cap_drops_the_oldest_and_tells_the_hubs_to_resync(kept_redis, monkeypatch):
    monkeypatch.setattr(publish, "PUBLISH_PENDING_MAX", 2)

    async def scenario() -> list[dict[str, Any]]:
        layer, channel = await listener()
        await asyncio.to_thread(kept_redis.stop)
        for symbol in ("A", "B", "C"):
            await asyncio.to_thread(publish.publish_batch, [price(symbol, "1")])
        await asyncio.to_thread(kept_redis.start)
        return await received(layer, channel, 6.0)

    messages = asyncio.run(scenario())
    assert prices_in(messages) == [("B", 1.0), ("C", 1.0)]
    assert [m["type"] for m in messages].count(RESYNC_MESSAGE_TYPE) == 1
