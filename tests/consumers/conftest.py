"""Helpers for communicator tests: the real ASGI stack (session + token middleware) and the
real Redis layer and registry; each test runs its coroutine in a fresh loop, and the hub of
that loop is stopped at its end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from rest_framework.authtoken.models import Token

from backend.market.models import Asset, Quote
from consumers.hub import _hubs
from consumers.routing import websocket_application


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    async def wrapper() -> Any:
        try:
            return await coro_fn()
        finally:
            hub = _hubs.get(asyncio.get_running_loop())
            if hub is not None:
                await hub.stop()
            # The sync thread's database connection would outlive the test database.
            await sync_to_async(connections.close_all)()

    return asyncio.run(wrapper())


def communicator(
    path: str = "/ws/realtime/", *, token: str | None = None, cookie: str | None = None, origin: str | None = None
) -> WebsocketCommunicator:
    headers: list[tuple[bytes, bytes]] = [(b"host", b"127.0.0.1:8000")]
    if token:
        headers.append((b"authorization", f"Token {token}".encode()))
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    if origin:
        headers.append((b"origin", origin.encode()))
    return WebsocketCommunicator(websocket_application, path, headers=headers)


async def receive(comm: WebsocketCommunicator, wait: float = 3) -> dict[str, Any]:
    return json.loads(await comm.receive_from(timeout=wait))


async def send(comm: WebsocketCommunicator, kind: str, **data: Any) -> None:
    await comm.send_to(text_data=json.dumps({"type": kind, "data": data}))


async def connected(comm: WebsocketCommunicator) -> dict[str, Any]:
    ok, _ = await comm.connect(timeout=5)
    assert ok
    hello = await receive(comm)
    assert hello["type"] == "connection", hello
    return hello


async def close_code(comm: WebsocketCommunicator, wait: float = 3) -> int | None:
    output = await comm.receive_output(timeout=wait)
    while output["type"] == "websocket.send":
        output = await comm.receive_output(timeout=wait)
    assert output["type"] == "websocket.close", output
    return output.get("code")


@pytest.fixture
def user() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def token(user: User) -> str:
    return Token.objects.create(user=user).key


@pytest.fixture
def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


@pytest.fixture
def quoted_asset() -> Asset:
    asset = Asset.objects.create(symbol="AAPL", tracking_status=Asset.TrackingStatus.TRACKED)
    now = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
    Quote.objects.create(
        asset=asset,
        price=Decimal("150.250000"),
        previous_close=Decimal("147.750000"),
        change=Decimal("2.500000"),
        change_percent=Decimal("1.692047"),
        volume=50_000_000,
        high=Decimal("151"),
        low=Decimal("148.5"),
        market_cap=2_400_000_000_000,
        source="yahoo",
        quoted_at=now,
        fetched_at=now,
    )
    return asset
