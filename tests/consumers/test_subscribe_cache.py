"""Subscribing without a database hop per message: in the steady state a connect and its
subscribes are answered from the process's memory (zero queries); misses are read in batches,
one query for many subscribers; what the hub routes keeps the memory fresh; and a burst of
connects waits for the registry's Redis pool instead of failing with 1011."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from backend.market.models import Asset, Quote
from backend.portfolios.models import Portfolio, Position
from consumers.hub import Hub
from tests.consumers.conftest import communicator, connected, receive, run, send

pytestmark = pytest.mark.django_db(transaction=True)


class Queries:
    """The queries run on the database thread every consumer shares (Channels' one sync
    thread), between `start` and `stop`."""

    def __init__(self) -> None:
        self.context: CaptureQueriesContext | None = None

    def _start(self) -> None:
        self.context = CaptureQueriesContext(connection)
        self.context.__enter__()

    def _stop(self) -> list[str]:
        assert self.context is not None
        self.context.__exit__(None, None, None)
        return [q["sql"] for q in self.context.captured_queries]

    async def start(self) -> None:
        await database_sync_to_async(self._start)()

    async def stop(self) -> list[str]:
        return await database_sync_to_async(self._stop)()


def _quoted(symbols: list[str]) -> list[Asset]:
    now = datetime.now(UTC)
    assets = [Asset.objects.create(symbol=s, tracking_status=Asset.TrackingStatus.TRACKED) for s in symbols]
    for i, asset in enumerate(assets):
        Quote.objects.create(
            asset=asset, price=Decimal(100 + i), source="simulated", quoted_at=now, fetched_at=now, volume=i
        )
    return assets


@pytest.fixture(autouse=True)
def many_connections_per_user(settings: Any) -> None:
    settings.WEBSOCKET_MAX_CONNECTIONS_PER_USER = 1000  # one user opens the whole burst


@pytest.fixture
def portfolio(user: User) -> Portfolio:
    portfolio = Portfolio.objects.create(owner=user, name="Core")
    (asset,) = _quoted(["MSFT"])
    Position.objects.create(portfolio=portfolio, asset=asset, quantity=Decimal(10), average_cost=Decimal(90))
    return portfolio


async def _subscribe_all(comm: Any, symbols: list[str], portfolio_id: int | None) -> dict[str, Any]:
    """Subscribe, then collect every snapshot: symbol -> asset_update data, plus "portfolio"."""
    for symbol in symbols:
        await send(comm, "subscribe_asset", symbol=symbol)
    if portfolio_id is not None:
        await send(comm, "subscribe_portfolio", portfolio_id=portfolio_id)
    wanted = len(symbols) + (portfolio_id is not None)
    got: dict[str, Any] = {}
    while len(got) < wanted:
        message = await receive(comm, wait=10)
        if message["type"] == "asset_update":
            got[message["data"]["symbol"]] = message["data"]
        elif message["type"] == "portfolio_update":
            got["portfolio"] = message["data"]
        else:
            assert message["type"] == "subscribed", message
    return got


async def _counted_subscriber(token: str, symbols: list[str], portfolio_id: int | None) -> tuple[list[str], dict]:
    """A new client connects and subscribes while the database thread's queries are counted."""
    queries = Queries()
    await queries.start()
    comm = communicator(token=token)
    await connected(comm)
    got = await _subscribe_all(comm, symbols, portfolio_id)
    sql = await queries.stop()
    await comm.disconnect()
    return sql, got


def test_in_the_steady_state_a_connect_and_its_asset_subscribes_run_no_database_query(token, settings):
    settings.WEBSOCKET_AUTH_CACHE_SECONDS = 10  # the token too, as an operator may choose
    _quoted(["MSFT"])

    async def scenario() -> tuple[list[str], dict[str, Any]]:
        first = communicator(token=token)
        await connected(first)
        await _subscribe_all(first, ["MSFT"], None)  # the misses: read once
        answer = await _counted_subscriber(token, ["MSFT"], None)
        await first.disconnect()
        return answer

    sql, got = run(scenario)
    assert sql == []
    assert got["MSFT"]["price"] == 100.0


def test_by_default_a_connect_reads_its_token_so_a_revoked_one_is_refused_at_once(token):
    async def scenario() -> tuple[dict[str, Any], tuple[bool, int | None]]:
        first = communicator(token=token)
        hello = await connected(first)
        await first.disconnect()
        await database_sync_to_async(Token.objects.filter(key=token).delete)()
        second = communicator(token=token)
        accepted, _ = await second.connect()
        closed = await second.receive_output(timeout=5)
        await second.disconnect()
        return hello, (accepted, closed.get("code"))

    hello, (_, code) = run(scenario)
    assert hello["type"] == "connection"
    assert code == 4401


def test_a_portfolio_subscribe_reads_the_portfolio_so_renames_and_deletions_show_at_once(token, portfolio):
    async def scenario() -> tuple[str, str, dict[str, Any]]:
        comm = communicator(token=token)
        await connected(comm)
        before = (await _subscribe_all(comm, [], portfolio.pk))["portfolio"]["name"]
        await database_sync_to_async(Portfolio.objects.filter(pk=portfolio.pk).update)(name="Renamed")
        after = (await _subscribe_all(comm, [], portfolio.pk))["portfolio"]["name"]
        await database_sync_to_async(Portfolio.objects.filter(pk=portfolio.pk).delete)()
        await send(comm, "subscribe_portfolio", portfolio_id=portfolio.pk)
        gone = await receive(comm)
        await comm.disconnect()
        return before, after, gone

    before, after, gone = run(scenario)
    assert (before, after) == ("Core", "Renamed")
    assert (gone["type"], gone["data"]["code"]) == ("error", "not_found")


def test_concurrent_portfolio_subscribes_share_one_load(token, portfolio):
    async def scenario() -> tuple[int, list[float]]:
        comms = [communicator(token=token) for _ in range(5)]
        await asyncio.gather(*(connected(c) for c in comms))
        before = Hub.current().snapshots.portfolio_loader.loads
        answers = await asyncio.gather(*(_subscribe_all(c, [], portfolio.pk) for c in comms))
        loads = Hub.current().snapshots.portfolio_loader.loads - before
        for comm in comms:
            await comm.disconnect()
        return loads, [a["portfolio"]["total_value"] for a in answers]

    loads, values = run(scenario)
    assert values == [1000.0] * 5
    assert loads <= 2  # one batch, or two when the first subscribe started a load alone


def test_a_burst_of_cold_subscribes_is_read_in_a_few_batched_queries(token):
    symbols = [f"S{i:02d}" for i in range(40)]
    _quoted(symbols)

    async def scenario() -> tuple[list[str], list[dict[str, Any]], int]:
        queries = Queries()
        await queries.start()
        comms = [communicator(token=token) for _ in symbols]
        await asyncio.gather(*(connected(c) for c in comms))
        answers = await asyncio.gather(*(_subscribe_all(c, [s], None) for c, s in zip(comms, symbols, strict=True)))
        sql = await queries.stop()
        loads = Hub.current().snapshots.asset_loader.loads
        for comm in comms:
            await comm.disconnect()
        return sql, answers, loads

    sql, answers, loads = run(scenario)
    assert [a[s]["symbol"] for a, s in zip(answers, symbols, strict=True)] == symbols
    assert [a[s]["price"] for a, s in zip(answers, symbols, strict=True)] == [float(100 + i) for i in range(40)]
    # 40 connects and 40 subscribes: one token query, and per batch of subscribes one status
    # query and one quote query, instead of 40 of each.
    assert loads <= 4
    assert len(sql) <= 1 + 2 * loads, sql


def test_a_symbol_new_to_the_process_is_read_once_for_all_its_subscribers(token):
    _quoted(["AAPL"])

    async def scenario() -> tuple[int, list[float]]:
        comms = [communicator(token=token) for _ in range(10)]
        await asyncio.gather(*(connected(c) for c in comms))
        answers = await asyncio.gather(*(_subscribe_all(c, ["AAPL"], None) for c in comms))
        loads = Hub.current().snapshots.asset_loader.loads
        for comm in comms:
            await comm.disconnect()
        return loads, [a["AAPL"]["price"] for a in answers]

    loads, prices = run(scenario)
    assert loads == 1
    assert prices == [100.0] * 10


def test_a_routed_asset_update_is_what_the_next_subscriber_gets(token, settings):
    settings.WEBSOCKET_AUTH_CACHE_SECONDS = 10
    _quoted(["AAPL"])

    async def scenario() -> tuple[list[str], dict[str, Any]]:
        first = communicator(token=token)
        await connected(first)
        await _subscribe_all(first, ["AAPL"], None)
        hub = Hub.current()
        data = {"symbol": "AAPL", "price": 123.45, "last_updated": "2026-12-06T01:00:00Z", "source": "stream"}
        hub.dispatch([{"group": "asset.AAPL", "type": "asset_update", "data": data, "timestamp": "t"}])
        answer = await _counted_subscriber(token, ["AAPL"], None)
        await first.disconnect()
        return answer

    sql, got = run(scenario)
    assert sql == []
    assert got["AAPL"]["price"] == 123.45


def test_a_portfolio_loaded_for_its_owner_is_still_not_found_for_another_user(token, portfolio):
    mallory = Token.objects.create(user=User.objects.create_user("mallory")).key

    async def scenario() -> dict[str, Any]:
        owner = communicator(token=token)
        await connected(owner)
        await _subscribe_all(owner, [], portfolio.pk)
        other = communicator(token=mallory)
        await connected(other)
        await send(other, "subscribe_portfolio", portfolio_id=portfolio.pk)
        answer = await receive(other)
        await owner.disconnect()
        await other.disconnect()
        return answer

    answer = run(scenario)
    assert answer["type"] == "error"
    assert answer["data"]["code"] == "not_found"


def test_an_unknown_symbol_is_refused_from_memory_too(token):
    Asset.objects.create(symbol="NOPE", tracking_status=Asset.TrackingStatus.UNKNOWN)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        first = communicator(token=token)
        await connected(first)
        await send(first, "subscribe_asset", symbol="NOPE")
        one = await receive(first)
        queries = Queries()
        await queries.start()
        await send(first, "subscribe_asset", symbol="NOPE")
        two = await receive(first)
        sql = await queries.stop()
        await first.disconnect()
        return one, two, sql

    one, two, sql = run(scenario)
    assert one["data"]["code"] == two["data"]["code"] == "unknown_symbol"
    assert sql == []


def test_a_session_user_is_resolved_once_for_many_connections(session_cookie, portfolio, settings):
    settings.WEBSOCKET_AUTH_CACHE_SECONDS = 10

    async def scenario() -> tuple[list[str], list[dict[str, Any]]]:
        origin = "http://127.0.0.1:8000"
        first = communicator(cookie=session_cookie, origin=origin)
        hello = [await connected(first)]
        queries = Queries()
        await queries.start()
        others = [communicator(cookie=session_cookie, origin=origin) for _ in range(5)]
        hello += await asyncio.gather(*(connected(c) for c in others))
        sql = await queries.stop()
        for comm in (first, *others):
            await comm.disconnect()
        return sql, hello

    sql, hello = run(scenario)
    assert sql == []
    assert {h["data"]["user_id"] for h in hello} == {portfolio.owner_id}


def test_a_burst_of_connects_waits_for_the_registry_pool_and_is_never_closed_with_1011(settings, token):
    settings.WEBSOCKET_REDIS_MAX_CONNECTIONS = 2  # far fewer than the concurrent admissions

    async def scenario() -> list[dict[str, Any]]:
        comms = [communicator(token=token) for _ in range(60)]
        hellos = await asyncio.gather(*(connected(c) for c in comms))
        for comm in comms:
            await comm.disconnect()
        return hellos

    hellos = run(scenario)
    assert len(hellos) == 60
    assert all(h["data"]["status"] == "connected" for h in hellos)
