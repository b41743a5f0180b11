"""tickerflow_client, the Python client: unit tests of its frame handler (seq gaps, backoff)
and live tests against real Daphne processes (published updates, a server restart, 4401)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from backend.market.models import Asset, Quote
from backend.realtime.events import asset_event
from backend.realtime.payloads import AssetUpdate
from backend.realtime.publish import publish_batch
from tests.live import LiveProcess, daphne, free_port, process_env, wait_for_port
from tickerflow_client import Gap, Message, Status, TickerflowClient, backoff_delay, normalize_symbol

# --- unit: no server ----------------------------------------------------------------------


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    async def send(self, message: str) -> None:
        self.sent.append(json.loads(message))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        pass


def frame(kind: str, seq: int, **data) -> str:
    return json.dumps(
        {"type": kind, "data": data, "timestamp": "2026-12-05T22:36:12Z", "connection_id": "c1", "seq": seq}
    )


def test_refused_attempts_wait_at_most_the_unreached_cap_however_many():
    """Nothing listens on the port: every attempt is refused before reaching a server, so the
    wait stays under `unreached_max_delay` while the attempts pile up (the full 30 s cap is
    for servers that accepted and closed)."""
    port = free_port()
    delays: list[float] = []

    async def scenario() -> None:
        enough = asyncio.Event()

        def seen(_: int | None) -> None:  # each refused attempt ends here, then waits
            delays.append(client.next_delay or 0.0)
            if client.reconnect_attempts >= 8:
                enough.set()

        client = TickerflowClient(
            f"ws://127.0.0.1:{port}/ws/realtime/",
            token="t",
            base_delay=1.0,
            unreached_max_delay=0.02,
            random=lambda: 0.999,
            on_disconnect=seen,
        )
        async with client:
            await asyncio.wait_for(enough.wait(), timeout=10)
        assert client.opened == 0

    asyncio.run(scenario())
    assert max(delays) < 0.02  # 1 s x 2^7 uncapped
    assert max(delays) > 0.019


def test_backoff_is_full_jitter_doubling_up_to_the_cap():
    assert backoff_delay(0, random=lambda: 0.0) == 0
    assert backoff_delay(0, random=lambda: 0.999) < 1.0
    assert 3.9 < backoff_delay(2, random=lambda: 0.999) < 4.0
    assert 29.9 < backoff_delay(20, random=lambda: 0.999) < 30.0
    assert backoff_delay(3, base_delay=0.1, max_delay=0.5, random=lambda: 0.5) == 0.25


def test_symbols_are_normalized_and_malformed_ones_refused():
    assert normalize_symbol(" brk-b ") == "BRK-B"
    assert normalize_symbol("^gspc") == "^GSPC"
    with pytest.raises(ValueError, match="not a symbol"):
        normalize_symbol("AA PL")
    with pytest.raises(ValueError, match="not a symbol"):
        normalize_symbol("X" * 21)


def test_subscriptions_wait_for_the_connection_and_a_seq_gap_resubscribes_once_per_interval():
    gaps: list[Gap] = []

    async def scenario() -> tuple[TickerflowClient, list[list[dict]]]:
        client = TickerflowClient("ws://127.0.0.1:1/ws/realtime/", on_gap=gaps.append, min_resync_interval=60)
        socket = FakeSocket()
        client._socket = socket  # as the receive loop does once the handshake is done
        assert await client.subscribe_asset("aapl") is False  # remembered, not sent: no `connection` yet
        assert await client.subscribe_portfolio(3) is False
        snapshots = []
        await client.handle_frame(frame("connection", 1, status="connected", connection_id="c1"))
        snapshots.append(list(socket.sent))  # the connection message sends every subscription
        await client.handle_frame(frame("subscribed", 2, channel="asset", symbol="AAPL"))
        await client.handle_frame(frame("asset_update", 3, symbol="AAPL", price=1.0))
        snapshots.append(list(socket.sent))  # no gap: nothing more
        await client.handle_frame(frame("asset_update", 6, symbol="AAPL", price=2.0))
        snapshots.append(list(socket.sent))  # 4 and 5 were lost: everything again
        await client.handle_frame(frame("asset_update", 9, symbol="AAPL", price=3.0))
        await client.handle_frame(frame("asset_update", 10, symbol="AAPL", price=4.0))
        snapshots.append(list(socket.sent))  # a second gap within the interval: folded, later
        assert client._resync_task is not None
        await client.close()
        return client, snapshots

    client, sent = asyncio.run(scenario())
    subscribe_all = [
        {"type": "subscribe_asset", "data": {"symbol": "AAPL"}},
        {"type": "subscribe_portfolio", "data": {"portfolio_id": 3}},
    ]
    assert sent[0] == subscribe_all
    assert sent[1] == subscribe_all
    assert sent[2] == subscribe_all * 2
    assert sent[3] == subscribe_all * 2
    assert gaps == [Gap(expected=4, received=6), Gap(expected=7, received=9)]
    assert client.gaps == 2
    assert client.last_seq == 10


def test_gap_resync_folds_into_one_after_the_interval():
    async def scenario() -> list[dict]:
        client = TickerflowClient("ws://127.0.0.1:1/ws/realtime/", min_resync_interval=0.2)
        socket = FakeSocket()
        client._socket = socket
        await client.subscribe_asset("MSFT")
        await client.handle_frame(frame("connection", 1, connection_id="c1"))
        await client.handle_frame(frame("asset_update", 5, symbol="MSFT", price=1.0))  # resync now
        await client.handle_frame(frame("asset_update", 8, symbol="MSFT", price=1.0))  # scheduled
        await client.handle_frame(frame("asset_update", 12, symbol="MSFT", price=1.0))  # folded in
        await asyncio.sleep(0.4)
        await client.close()
        return socket.sent

    sent = asyncio.run(scenario())
    assert sent == [{"type": "subscribe_asset", "data": {"symbol": "MSFT"}}] * 3  # connect, gap, folded gaps


def test_a_new_connection_starting_at_seq_1_is_no_gap_and_messages_reach_every_reader():
    async def scenario() -> tuple[TickerflowClient, list[Message], list[Message], list[str]]:
        seen: list[Message] = []
        typed: list[str] = []
        client = TickerflowClient("ws://127.0.0.1:1/ws/realtime/", on_message=seen.append, queue_size=2)
        client.on("asset_update", lambda m: typed.append(m["type"]))
        client._socket = FakeSocket()
        await client.handle_frame(frame("connection", 1, connection_id="c1"))
        await client.handle_frame(frame("asset_update", 2, symbol="A", price=1.0))
        await client.handle_frame(frame("connection", 1, connection_id="c2"))  # after a reconnect
        await client.handle_frame(b"not json")
        client._stop(Status.DISCONNECTED)
        queued = [m async for m in client]
        return client, seen, queued, typed

    client, seen, queued, typed = asyncio.run(scenario())
    assert client.gaps == 0
    assert [m["type"] for m in seen] == ["connection", "asset_update", "connection"]
    assert [m["type"] for m in queued] == ["asset_update", "connection"]  # a buffer of 2: the oldest dropped
    assert client.dropped == 1
    assert typed == ["asset_update"]
    assert client.connection_id is None  # stopped


# --- live: real Daphne processes ----------------------------------------------------------


def _asset_update(symbol: str, price: str) -> AssetUpdate:
    return {
        "symbol": symbol,
        "price": Decimal(price),
        "change": None,
        "change_percent": None,
        "volume": 10,
        "high": None,
        "low": None,
        "market_cap": None,
        "previous_close": None,
        "last_updated": "2026-11-21T16:00:00Z",
        "source": "simulated",
    }


def _store_quote(symbol: str, price: str) -> None:
    asset = Asset.objects.create(symbol=symbol, tracking_status="tracked")
    now = datetime.now(UTC)
    Quote.objects.create(asset=asset, price=Decimal(price), source="simulated", quoted_at=now, fetched_at=now)


async def _until(stream: AsyncIterator[Message], kind: str, seconds: float = 20, **match) -> list[Message]:
    """Reads the stream up to and including a message of `kind` whose data has `match`."""
    seen: list[Message] = []
    async with asyncio.timeout(seconds):
        async for message in stream:
            seen.append(message)
            data: dict = dict(message["data"])
            if message["type"] == kind and all(data.get(k) == v for k, v in match.items()):
                return seen
    raise AssertionError(f"the client stopped before a {kind}: {seen}")


@pytest.fixture
def token() -> str:
    user = User.objects.create_user("pyclient", password="pw-pyclient-123")
    return Token.objects.create(user=user).key


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_receives_a_published_asset_update_after_subscribing(token):
    Asset.objects.create(symbol="MSFT", tracking_status="tracked")

    async def scenario(port: int) -> tuple[TickerflowClient, list[Message]]:
        async with TickerflowClient(f"ws://127.0.0.1:{port}/ws/realtime/", token=token) as client:
            stream = client.messages()
            await client.subscribe_asset("msft")
            seen = await _until(stream, "subscribed", symbol="MSFT")
            assert await asyncio.to_thread(publish_batch, [asset_event(_asset_update("MSFT", "412.123456"))]) == 1
            seen += await _until(stream, "asset_update", symbol="MSFT")
            assert await client.ping()
            seen += await _until(stream, "pong")
        return client, seen

    with daphne() as (_, port):
        client, seen = asyncio.run(scenario(port))
    assert seen[0]["type"] == "connection"
    update = seen[-2]
    assert update["type"] == "asset_update"
    assert update["data"]["price"] == 412.123456
    assert [m["seq"] for m in seen] == list(range(1, len(seen) + 1))
    assert client.gaps == 0
    assert client.status == Status.DISCONNECTED
    assert client.stopped


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_reconnects_after_a_server_restart_and_gets_the_snapshot_again(token):
    _store_quote("NVDA", "290.87")
    port = free_port()
    env = process_env()
    argv = [sys.executable, "-m", "daphne", "--bind", "127.0.0.1", "--port", str(port), "config.asgi:application"]
    statuses: list[Status] = []

    def start() -> LiveProcess:
        proc = LiveProcess("daphne", argv, env)
        try:
            wait_for_port(port)
        except BaseException:
            proc.stop()
            raise
        return proc

    procs = [start()]

    async def scenario() -> tuple[TickerflowClient, list[Message], list[Message]]:
        client = TickerflowClient(
            f"ws://127.0.0.1:{port}/ws/realtime/",
            token=token,
            base_delay=0.2,
            max_delay=1.0,
            on_status_change=statuses.append,
        )
        await client.subscribe_asset("NVDA")
        async with client:
            stream = client.messages()
            before = await _until(stream, "asset_update", symbol="NVDA")  # the snapshot
            await asyncio.to_thread(procs[0].stop)
            procs.append(await asyncio.to_thread(start))
            after = await _until(stream, "asset_update", seconds=30, symbol="NVDA")  # the snapshot again
        return client, before, after

    try:
        client, before, after = asyncio.run(scenario())
    finally:
        for proc in procs:
            proc.stop()
    assert [m["type"] for m in before] == ["connection", "subscribed", "asset_update"]
    assert [m["type"] for m in after] == ["connection", "subscribed", "asset_update"]
    assert after[0]["connection_id"] != before[0]["connection_id"]
    snapshot = after[-1]
    assert snapshot["type"] == "asset_update"
    assert snapshot["data"]["price"] == 290.87
    assert client.opened == 2
    assert Status.RECONNECTING in statuses
    assert statuses.index(Status.RECONNECTING) < len(statuses) - 1
    assert client.gaps == 0


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_stops_for_good_after_4401():
    closes: list[int | None] = []

    async def scenario(port: int) -> tuple[TickerflowClient, bool, list[Message]]:
        client = TickerflowClient(
            f"ws://127.0.0.1:{port}/ws/realtime/", token="not-a-token", base_delay=0.05, on_disconnect=closes.append
        )
        await client.subscribe_asset("AAPL")
        client.connect()
        connected = await asyncio.wait_for(client.wait_connected(), timeout=15)
        received = [m async for m in client]  # ends: the client stopped
        await asyncio.sleep(1.0)  # 20 backoff periods: no retry comes
        await client.close()
        return client, connected, received

    with daphne() as (_, port):
        client, connected, received = asyncio.run(scenario(port))
    assert connected is False
    assert received == []
    assert client.status == Status.SIGNED_OUT  # close() keeps it: the reason it stopped
    assert client.close_code == 4401
    assert closes == [4401]
    assert client.opened == 1
