"""/ws/realtime/ through the real middleware stack (WebsocketCommunicator): every message of
the contract, every error code, and the envelope."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from decimal import Decimal

import pytest
import redis
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from backend.market.models import Asset
from backend.portfolios.models import Portfolio, Position
from backend.realtime.events import asset_event, position_event, unknown_symbol_event
from backend.realtime.publish import publish_batch_async
from tests.consumers.conftest import communicator, connected, receive, run, send

pytestmark = pytest.mark.django_db(transaction=True)


def test_connection_message_has_the_envelope_and_seq_counts_per_connection(user, token):
    async def scenario():
        comm = communicator(token=token)
        hello = await connected(comm)
        assert set(hello) == {"type", "data", "timestamp", "connection_id", "seq"}
        assert hello["seq"] == 1
        assert hello["data"] == {
            "status": "connected",
            "connection_id": hello["connection_id"],
            "authenticated": True,
            "user_id": user.pk,
        }
        uuid.UUID(hello["connection_id"])
        assert hello["timestamp"].endswith("Z")
        await send(comm, "ping")
        pong = await receive(comm)
        assert (pong["type"], pong["data"], pong["seq"]) == ("pong", {}, 2)
        await comm.send_to(text_data=json.dumps({"type": "ping"}))  # data may be omitted
        assert (await receive(comm))["seq"] == 3
        await comm.disconnect()

    run(scenario)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"data": {}}', "invalid_message"),
        ('{"type": "subscribe_asset", "data": "AAPL"}', "invalid_message"),
        ('{"type": "subscribe_asset", "data": {}}', "invalid_message"),
        ('{"type": "subscribe_portfolio", "data": {"portfolio_id": "x"}}', "invalid_message"),
        ('{"type": "subscribe_portfolio", "data": {"portfolio_id": true}}', "invalid_message"),
        ('{"type": "subscribe_portfolio", "data": {"portfolio_id": -3}}', "invalid_message"),
        ('{"type": "shout", "data": {}}', "unknown_type"),
        ('{"type": "subscribe_asset", "data": {"symbol": "BAD SYMBOL"}}', "invalid_symbol"),
        ('{"type": "subscribe_asset", "data": {"symbol": "ABCDEFGHIJKLMNOPQRSTU"}}', "invalid_symbol"),
        ('{"type": "unsubscribe_asset", "data": {"symbol": 42}}', "invalid_symbol"),
    ],
)
def test_malformed_messages_get_an_error_code_and_the_connection_stays_open(token, frame, code):
    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        await comm.send_to(text_data=frame)
        error = await receive(comm)
        assert error["type"] == "error"
        assert error["data"]["code"] == code
        assert error["data"]["message"]
        await send(comm, "ping")
        assert (await receive(comm))["type"] == "pong"
        await comm.disconnect()

    run(scenario)


def test_binary_frame_is_an_invalid_message(token):
    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        await comm.send_to(bytes_data=b"\x00\x01")
        assert (await receive(comm))["data"]["code"] == "invalid_message"
        await comm.disconnect()

    run(scenario)


def test_subscribe_asset_acks_then_sends_the_latest_quote_upper_casing_the_symbol(token, quoted_asset):
    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        await send(comm, "subscribe_asset", symbol="aapl")
        ack = await receive(comm)
        assert (ack["type"], ack["data"], ack["seq"]) == ("subscribed", {"channel": "asset", "symbol": "AAPL"}, 2)
        snap = await receive(comm)
        assert snap["type"] == "asset_update"
        assert snap["seq"] == 3
        assert snap["data"] == {
            "symbol": "AAPL",
            "price": 150.25,
            "change": 2.5,
            "change_percent": 1.69,
            "volume": 50_000_000,
            "high": 151.0,
            "low": 148.5,
            "market_cap": 2_400_000_000_000,
            "previous_close": 147.75,
            "last_updated": "2026-11-20T15:30:00Z",
            "source": "yahoo",
        }
        await send(comm, "unsubscribe_asset", symbol="AAPL")
        assert (await receive(comm))["data"] == {"channel": "asset", "symbol": "AAPL"}
        await comm.disconnect()

    run(scenario)


def test_subscribing_a_new_well_formed_symbol_tracks_it_and_enqueues_a_prompt_fetch(token):
    broker = redis.Redis.from_url(django_settings.REDIS_URL)
    broker.delete("celery")

    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        await send(comm, "subscribe_asset", symbol="NEWCO")
        ack = await receive(comm)
        assert ack["type"] == "subscribed"
        assert await comm.receive_nothing(timeout=0.3)  # no quote yet, so no snapshot
        await comm.disconnect()

    run(scenario)
    asset = Asset.objects.get(symbol="NEWCO")
    assert asset.tracking_status == Asset.TrackingStatus.PENDING
    queued = [json.loads(m) for m in broker.lrange("celery", 0, -1)]
    bodies = [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))) for m in queued]
    assert ("tasks.prices.fetch_price_batch", [[], {"symbols": ["NEWCO"], "run_id": None, "force": True}]) in [
        (task, body[:2]) for task, body in bodies
    ]
    broker.delete("celery")
    broker.close()


def test_subscribing_a_symbol_the_sources_declared_unknown_is_refused_at_once(token):
    Asset.objects.create(symbol="NOPE", tracking_status=Asset.TrackingStatus.UNKNOWN)

    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        await send(comm, "subscribe_asset", symbol="NOPE")
        error = await receive(comm)
        assert error["type"] == "error"
        assert error["data"]["code"] == "unknown_symbol"
        assert error["data"]["symbol"] == "NOPE"
        assert await comm.receive_nothing(timeout=0.2)
        await comm.disconnect()

    run(scenario)


def _portfolio(owner: User, name: str = "Growth") -> Portfolio:
    asset = Asset.objects.get_or_create(symbol="AAPL")[0]
    portfolio = Portfolio.objects.create(
        owner=owner,
        name=name,
        total_value=Decimal("15025.00"),
        total_cost=Decimal("12000"),
        daily_change=Decimal("250"),
        daily_change_percent=Decimal("1.69204737732656"),
        total_return=Decimal("3025"),
        total_return_percent=Decimal("25.2083333333"),
    )
    Position.objects.create(portfolio=portfolio, asset=asset, quantity=Decimal("100"), average_cost=Decimal("120"))
    return portfolio


def test_subscribe_portfolio_acks_and_sends_the_valuation_snapshot(user, token, quoted_asset):
    portfolio = _portfolio(user)

    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        await send(comm, "subscribe_portfolio", portfolio_id=portfolio.pk)
        ack = await receive(comm)
        assert ack["data"] == {"channel": "portfolio", "portfolio_id": portfolio.pk}
        snap = await receive(comm)
        assert snap["type"] == "portfolio_update"
        assert snap["data"]["portfolio_id"] == portfolio.pk
        assert snap["data"]["total_value"] == 15025.0
        assert snap["data"]["daily_change_percent"] == 1.69
        assert snap["data"]["value_changed"] is False
        assert snap["data"]["positions_updated"] == [
            {
                "symbol": "AAPL",
                "quantity": 100.0,
                "current_price": 150.25,
                "current_value": 15025.0,
                "daily_change": 250.0,
            }
        ]
        await send(comm, "unsubscribe_portfolio", portfolio_id=portfolio.pk)
        assert (await receive(comm))["data"] == {"channel": "portfolio", "portfolio_id": portfolio.pk}
        await comm.disconnect()

    run(scenario)


def test_someone_elses_portfolio_and_a_missing_one_get_the_same_not_found(token):
    other = User.objects.create_user("bob", password="pw-bob-12345")
    theirs = _portfolio(other)

    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        answers = []
        for pid in (theirs.pk, theirs.pk + 1000):
            await send(comm, "subscribe_portfolio", portfolio_id=pid)
            answers.append((await receive(comm))["data"])
        assert [a["code"] for a in answers] == ["not_found", "not_found"]
        assert answers[0]["message"].replace(str(theirs.pk), "N") == answers[1]["message"].replace(
            str(theirs.pk + 1000), "N"
        )
        await comm.disconnect()

    run(scenario)


def test_subscriptions_over_the_per_connection_limit_get_subscription_limit(token, settings):
    settings.WEBSOCKET_MAX_SUBSCRIPTIONS_PER_CONNECTION = 2
    Asset.objects.bulk_create([Asset(symbol=s, tracking_status="tracked") for s in ("AAA", "BBB", "CCC")])

    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        for symbol in ("AAA", "BBB"):
            await send(comm, "subscribe_asset", symbol=symbol)
            assert (await receive(comm))["type"] == "subscribed"
        await send(comm, "subscribe_asset", symbol="AAA")  # already held: no new slot needed
        assert (await receive(comm))["type"] == "subscribed"
        await send(comm, "subscribe_asset", symbol="CCC")
        error = await receive(comm)
        assert error["data"]["code"] == "subscription_limit"
        await send(comm, "unsubscribe_asset", symbol="AAA")
        await receive(comm)
        await send(comm, "subscribe_asset", symbol="CCC")
        assert (await receive(comm))["type"] == "subscribed"
        await comm.disconnect()

    run(scenario)


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
