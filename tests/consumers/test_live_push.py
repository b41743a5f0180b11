"""The push layer with real processes: Daphne subprocesses, real Redis and PostgreSQL, a
`websockets` client. Events are published from this test process with publish_batch, as a
Celery task does, so these tests do not depend on the price pipeline."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from decimal import Decimal

import pytest
import websockets
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token
from websockets.typing import Origin

from backend.market.models import Asset
from backend.portfolios.models import Portfolio, Position
from backend.realtime.events import asset_event, portfolio_event
from backend.realtime.payloads import AssetUpdate, PortfolioUpdate
from backend.realtime.publish import publish_batch
from backend.realtime.registry import ConnectionManager
from tests.live import daphne

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _asset_update(symbol: str, price: str) -> AssetUpdate:
    return {
        "symbol": symbol,
        "price": Decimal(price),
        "change": Decimal("1.5"),
        "change_percent": Decimal("0.75"),
        "volume": 10,
        "high": None,
        "low": None,
        "market_cap": None,
        "previous_close": Decimal("198.5"),
        "last_updated": "2026-11-21T16:00:00Z",
        "source": "simulated",
    }


def _portfolio_update(portfolio: Portfolio) -> PortfolioUpdate:
    return {
        "portfolio_id": portfolio.pk,
        "name": portfolio.name,
        "total_value": Decimal("2000.005"),
        "total_cost": Decimal("1500"),
        "daily_change": Decimal("15"),
        "daily_change_percent": Decimal("0.755"),
        "total_return": Decimal("500.005"),
        "total_return_percent": Decimal("33.33"),
        "value_changed": True,
        "valued_at": "2026-11-21T16:00:01Z",
        "positions_updated": [],
    }


async def _recv_type(ws, kind: str, wait: float = 10) -> dict:
    deadline = time.monotonic() + wait
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=max(0.1, deadline - time.monotonic())))
        if message["type"] == kind:
            return message


@pytest.fixture
def alice() -> tuple[User, str]:
    user = User.objects.create_user("alice", password="pw-alice-123")
    return user, Token.objects.create(user=user).key


def test_published_asset_and_portfolio_updates_reach_subscribers_on_two_daphne_processes(alice):
    user, token = alice
    Asset.objects.create(symbol="^GSPC", tracking_status="tracked")
    asset = Asset.objects.create(symbol="MSFT", tracking_status="tracked")
    portfolio = Portfolio.objects.create(owner=user, name="Core")
    Position.objects.create(portfolio=portfolio, asset=asset, quantity=Decimal(10), average_cost=Decimal(150))
    headers = {"Authorization": f"Token {token}"}

    async def client(port: int, ready: asyncio.Event, got: list) -> None:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/realtime/", additional_headers=headers) as ws:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "connection"
            for message in (
                {"type": "subscribe_asset", "data": {"symbol": "^gspc"}},
                {"type": "subscribe_portfolio", "data": {"portfolio_id": portfolio.pk}},
            ):
                await ws.send(json.dumps(message))
            await _recv_type(ws, "portfolio_update")  # the snapshot: both subscriptions are in
            ready.set()
            got.append(await _recv_type(ws, "asset_update"))
            got.append(await _recv_type(ws, "portfolio_update"))

    async def scenario(ports: list[int]) -> tuple[list, list, int]:
        readies = [asyncio.Event() for _ in ports]
        results: list[list] = [[] for _ in ports]
        tasks = [asyncio.create_task(client(p, r, g)) for p, r, g in zip(ports, readies, results, strict=True)]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), timeout=20)
        manager = ConnectionManager()
        counted = await asyncio.to_thread(manager.get_connection_count)
        nodes = await asyncio.to_thread(manager.live_nodes)
        assert len(nodes) == 2
        events = [asset_event(_asset_update("^GSPC", "6012.345678")), portfolio_event(_portfolio_update(portfolio))]
        assert await asyncio.to_thread(publish_batch, events) == 2
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=20)
        return results, events, counted

    with daphne() as (_, port_a), daphne() as (_, port_b):
        results, events, counted = asyncio.run(scenario([port_a, port_b]))
    assert counted == 2
    for asset_msg, portfolio_msg in results:
        assert asset_msg["data"]["symbol"] == "^GSPC"
        assert asset_msg["data"]["price"] == 6012.345678
        assert asset_msg["timestamp"] == events[0]["timestamp"]
        assert portfolio_msg["data"]["total_value"] == 2000.0  # half-even to cents at the edge
        assert portfolio_msg["data"]["value_changed"] is True
        assert asset_msg["seq"] < portfolio_msg["seq"]


def test_real_client_sees_4401_a_refused_foreign_origin_and_an_accepted_token(alice):
    user, token = alice
    web = Client()
    web.force_login(user)
    cookie = f"sessionid={web.cookies['sessionid'].value}"

    async def scenario(port: int) -> None:
        url = f"ws://127.0.0.1:{port}/ws/realtime/"
        async with websockets.connect(url) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4401
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url, additional_headers={"Cookie": cookie}, origin=Origin("https://evil.example"))
        assert refused.value.response.status_code == 403
        async with websockets.connect(
            url, additional_headers={"Cookie": cookie}, origin=Origin(f"http://127.0.0.1:{port}")
        ) as ws:
            assert json.loads(await ws.recv())["data"]["user_id"] == user.pk
        async with websockets.connect(url, additional_headers={"Authorization": f"Token {token}"}) as ws:
            hello = json.loads(await ws.recv())
            assert (hello["type"], hello["seq"], hello["data"]["user_id"]) == ("connection", 1, user.pk)

    with daphne() as (_, port):
        asyncio.run(scenario(port))


def test_a_client_that_stops_reading_does_not_stop_the_others(alice):
    """Daphne writes to a non-reading client until the kernel buffers fill; past that the
    outbox holds one value per symbol. A reading client on the same process keeps up, and
    the stuck one, once it reads again, ends with the latest value of every symbol."""
    _, token = alice
    Asset.objects.bulk_create([Asset(symbol=f"S{i}", tracking_status="tracked") for i in range(10)])
    headers = {"Authorization": f"Token {token}"}
    padding = "x" * 8000

    async def scenario(port: int) -> tuple[int, dict, int, dict]:
        url = f"ws://127.0.0.1:{port}/ws/realtime/"
        # A small fixed receive buffer turns off the kernel's autotuning (up to 32 MB on
        # loopback here), so what the client does not read stays on the server side.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.connect(("127.0.0.1", port))
        stuck = await websockets.connect(url, additional_headers=headers, max_queue=1, sock=sock)
        reader = await websockets.connect(url, additional_headers=headers)
        for ws in (stuck, reader):
            await ws.recv()
            for i in range(10):
                await ws.send(json.dumps({"type": "subscribe_asset", "data": {"symbol": f"S{i}"}}))
            for _ in range(10):
                await ws.recv()
        # `stuck` stops reading. Each round is published once the reader has the previous
        # one, so the reader never falls behind while ~16 MB go to the stuck client.
        last_price = "0"
        seen = 0
        last: dict = {}
        for round_ in range(200):
            events = []
            for i in range(10):
                payload = _asset_update(f"S{i}", f"{round_ + 1}.0")
                payload["source"] = padding
                events.append(asset_event(payload))
            last_price = f"{float(round_ + 1)}"
            await asyncio.to_thread(publish_batch, events)
            while str(last.get("data", {}).get("price")) != last_price:
                message = json.loads(await asyncio.wait_for(reader.recv(), timeout=10))
                seen += 1
                if message["type"] == "asset_update" and message["data"]["symbol"] == "S9":
                    last = message
        await reader.close()
        # Now the stuck client reads: it gets fewer frames, ending with the latest values.
        stuck_seen = 0
        stuck_last: dict = {}
        while str(stuck_last.get("data", {}).get("price")) != last_price:
            message = json.loads(await asyncio.wait_for(stuck.recv(), timeout=10))
            stuck_seen += 1
            if message["type"] == "asset_update" and message["data"]["symbol"] == "S9":
                stuck_last = message
        await stuck.close()
        return seen, last, stuck_seen, stuck_last

    with daphne() as (proc, port):
        seen, last, stuck_seen, stuck_last = asyncio.run(scenario(port))
        assert "Traceback" not in proc.log()
    assert seen == 2000  # the reader got every update, none coalesced
    assert last["data"]["price"] == 200.0
    assert stuck_seen < 2000  # older values of a symbol were replaced while it did not read
    assert stuck_last["data"]["price"] == 200.0
    assert stuck_last["seq"] == 11 + stuck_seen  # seq stays gapless: 1 hello + 10 acks first
