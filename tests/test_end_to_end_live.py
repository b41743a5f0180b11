"""The whole product on real parts: a price change at the (fake) market reaches a browser-like
WebSocket client as `asset_update` and `portfolio_update`, through a real Celery worker,
PostgreSQL/SQLite, Redis, the channel layer and two Daphne processes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import websockets
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from backend.market.models import Asset
from backend.portfolios.models import Portfolio, Position
from config.celery import app
from tests.fakes.upstream import FakeUpstream, fake_upstream
from tests.live import celery_worker, daphne

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with fake_upstream() as server:
        yield server


async def next_of(ws: Any, kind: str, where: dict[str, Any], within: float = 30) -> dict[str, Any]:
    """The next message of a type whose data matches `where` (other messages are skipped)."""
    deadline = time.monotonic() + within
    while True:
        raw = await asyncio.wait_for(ws.recv(), timeout=max(0.1, deadline - time.monotonic()))
        message = json.loads(raw)
        if message["type"] == kind and all(message["data"].get(k) == v for k, v in where.items()):
            return message


def force_fetch(symbols: list[str]) -> None:
    app.send_task("tasks.prices.fetch_price_batch", kwargs={"symbols": symbols, "force": True})


def test_a_price_change_at_the_source_reaches_subscribed_clients_on_two_daphne_processes(upstream):
    ann = User.objects.create_user("ann")
    token = Token.objects.create(user=ann).key
    aapl = Asset.objects.create(symbol="AAPL", name="Apple")
    portfolio = Portfolio.objects.create(owner=ann, name="Main")
    Position.objects.create(portfolio=portfolio, asset=aapl, quantity=Decimal("10"), average_cost=Decimal("150"))
    upstream.set_quote("AAPL", 190.50, previous_close=188.00, volume=1000)

    async def client(port: int) -> Any:
        ws = await websockets.connect(
            f"ws://127.0.0.1:{port}/ws/realtime/", additional_headers={"Authorization": f"Token {token}"}
        )
        await next_of(ws, "connection", {})
        await ws.send(json.dumps({"type": "subscribe_asset", "data": {"symbol": "aapl"}}))
        await next_of(ws, "subscribed", {"channel": "asset", "symbol": "AAPL"})
        await ws.send(json.dumps({"type": "subscribe_portfolio", "data": {"portfolio_id": portfolio.pk}}))
        await next_of(ws, "subscribed", {"channel": "portfolio", "portfolio_id": portfolio.pk})
        return ws

    async def scenario(port_a: int, port_b: int) -> None:
        clients = [await client(port_a), await client(port_b)]
        try:
            await asyncio.to_thread(force_fetch, ["AAPL"])
            for ws in clients:
                update = await next_of(ws, "asset_update", {"symbol": "AAPL", "price": 190.5})
                assert update["data"]["change"] == 2.5
                assert update["data"]["source"] == "yahoo"
                valued = await next_of(ws, "portfolio_update", {"portfolio_id": portfolio.pk, "total_value": 1905.0})
                assert valued["data"]["daily_change"] == 25.0
                assert valued["data"]["total_return"] == 405.0

            upstream.set_quote("AAPL", 200.00, previous_close=188.00, volume=2000)
            await asyncio.to_thread(force_fetch, ["AAPL"])
            for ws in clients:
                await next_of(ws, "asset_update", {"symbol": "AAPL", "price": 200.0})
                moved = await next_of(ws, "portfolio_update", {"portfolio_id": portfolio.pk, "total_value": 2000.0})
                assert moved["data"]["value_changed"] is True
                assert moved["data"]["total_return_percent"] == 33.33
        finally:
            for ws in clients:
                await ws.close()

    with celery_worker(**upstream.env(("yahoo",))), daphne() as (_, port_a), daphne() as (_, port_b):
        asyncio.run(scenario(port_a, port_b))
