"""/ws/realtime/ through the real middleware stack (WebsocketCommunicator): subscribing to an
asset or a portfolio (ack, then snapshot), tracking a new symbol, refusing unknown symbols and
other users' portfolios, and the per-connection subscription limit."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
import redis
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from backend.market.models import Asset
from backend.portfolios.models import Portfolio, Position
from tests.consumers.conftest import communicator, connected, receive, run, send

pytestmark = pytest.mark.django_db(transaction=True)


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
