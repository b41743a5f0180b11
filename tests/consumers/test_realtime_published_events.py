"""/ws/realtime/ through the real middleware stack (WebsocketCommunicator): published events
reach the right connections in the envelope: asset updates to subscribers only, position
updates to every connection of the owner, unknown symbols ending subscriptions, old
connections past the layer's group expiry, and batches split over several layer messages."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from backend.market.models import Asset
from backend.realtime.events import asset_event, position_event, unknown_symbol_event
from backend.realtime.publish import publish_batch_async
from tests.consumers.conftest import communicator, connected, receive, run, send

pytestmark = pytest.mark.django_db(transaction=True)


def test_published_events_reach_only_the_subscribers_wrapped_in_the_envelope(user, token, quoted_asset):
    other = User.objects.create_user("bob", password="pw-bob-12345")
    from rest_framework.authtoken.models import Token

    other_token = Token.objects.create(user=other).key

    async def scenario():
        sub = communicator(token=token)
        bystander = communicator(token=other_token)
        await connected(sub)
        await connected(bystander)
        await send(sub, "subscribe_asset", symbol="AAPL")
        await receive(sub)
        await receive(sub)  # snapshot, seq 3
        payload = {
            "symbol": "AAPL",
            "price": Decimal("151.123456"),
            "change": Decimal("3.373456"),
            "change_percent": Decimal("2.283218"),
            "volume": 1,
            "high": None,
            "low": None,
            "market_cap": None,
            "previous_close": Decimal("147.75"),
            "last_updated": "2026-11-20T15:31:00Z",
            "source": "simulated",
        }
        event = asset_event(payload)  # type: ignore[arg-type]
        await publish_batch_async([event])
        update = await receive(sub)
        assert update["type"] == "asset_update"
        assert update["seq"] == 4
        assert update["timestamp"] == event["timestamp"]
        assert update["data"]["price"] == 151.123456
        assert update["data"]["change"] == 3.37
        assert await bystander.receive_nothing(timeout=0.3)
        await sub.disconnect()
        await bystander.disconnect()

    run(scenario)


def test_position_updates_go_to_every_connection_of_the_owner(user, token):
    async def scenario():
        first, second = communicator(token=token), communicator(token=token)
        await connected(first)
        await connected(second)
        data = {
            "portfolio_id": 1,
            "symbol": "AAPL",
            "quantity": Decimal("2.5"),
            "current_price": Decimal("10"),
            "current_value": Decimal("25"),
            "daily_change": Decimal("1"),
            "total_return": Decimal("5"),
            "total_return_percent": Decimal("25"),
            "significant_change": True,
        }
        await publish_batch_async([position_event(user.pk, data)])  # type: ignore[arg-type]
        for comm in (first, second):
            message = await receive(comm)
            assert message["type"] == "position_update"
            assert message["data"]["quantity"] == 2.5
            assert message["data"]["significant_change"] is True
            await comm.disconnect()

    run(scenario)


def test_unknown_symbol_learned_later_is_sent_to_subscribers_and_ends_their_subscription(token):
    Asset.objects.create(symbol="GHOST", tracking_status=Asset.TrackingStatus.PENDING)

    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        await send(comm, "subscribe_asset", symbol="GHOST")
        await receive(comm)
        await publish_batch_async([unknown_symbol_event("GHOST")])
        error = await receive(comm)
        assert (error["type"], error["data"]["code"], error["data"]["symbol"]) == ("error", "unknown_symbol", "GHOST")
        payload = {"symbol": "GHOST", "price": Decimal(1), "last_updated": "x", "source": "s"}
        await publish_batch_async([asset_event(payload)])  # type: ignore[arg-type]
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    run(scenario)


def test_a_connection_older_than_the_layers_group_expiry_keeps_receiving(settings, token, quoted_asset):
    """The core layer silently drops group members after `group_expiry`; the hub re-joins on
    every heartbeat, so an old connection still gets its updates."""
    from channels.layers import channel_layers

    layer = dict(settings.CHANNEL_LAYERS["default"])
    layer["CONFIG"] = {**layer["CONFIG"], "group_expiry": 2}
    settings.CHANNEL_LAYERS = {"default": layer}
    settings.WEBSOCKET_NODE_TTL = 3  # heartbeat (and re-join) every second
    channel_layers.backends = {}

    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        await send(comm, "subscribe_asset", symbol="AAPL")
        await receive(comm)
        await receive(comm)
        await asyncio.sleep(3.5)  # well past the group expiry
        payload = {"symbol": "AAPL", "price": Decimal("152"), "last_updated": "t", "source": "s"}
        await publish_batch_async([asset_event(payload)])  # type: ignore[arg-type]
        update = await receive(comm)
        assert (update["type"], update["data"]["price"]) == ("asset_update", 152.0)
        await comm.disconnect()

    try:
        run(scenario)
    finally:
        channel_layers.backends = {}


def test_a_batch_larger_than_one_layer_message_arrives_whole_and_in_order(token, monkeypatch):
    import backend.realtime.publish

    monkeypatch.setattr(backend.realtime.publish, "MAX_EVENTS_PER_MESSAGE", 3)
    symbols = [f"T{i}" for i in range(8)]
    Asset.objects.bulk_create([Asset(symbol=s, tracking_status="tracked") for s in symbols])

    def update(symbol: str):
        payload = {"symbol": symbol, "price": Decimal(1), "last_updated": "t", "source": "s"}
        return asset_event(payload)  # type: ignore[arg-type]

    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        for symbol in symbols:
            await send(comm, "subscribe_asset", symbol=symbol)
            await receive(comm)
        assert await publish_batch_async([update(s) for s in symbols]) == 8
        received = [(await receive(comm))["data"]["symbol"] for _ in symbols]
        assert received == symbols
        await comm.disconnect()

    run(scenario)
