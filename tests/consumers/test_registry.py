"""The Redis-backed registry: true across processes (nodes), forgets a dead node's
connections, and feeds the pipeline's tracked symbols."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from django.conf import settings as django_settings

from backend.realtime.registry import PREFIX, ConnectionInfo, ConnectionManager, subscribed_symbols
from consumers.registry import NodeRegistry
from tests.consumers.conftest import communicator, connected, receive, run, send

pytestmark = pytest.mark.django_db(transaction=True)


def _info(conn: str, user_id: int, assets=(), portfolios=()) -> ConnectionInfo:
    return {
        "connection_id": conn,
        "node": "",
        "user_id": user_id,
        "username": f"u{user_id}",
        "auth": "token",
        "connected_at": time.time(),
        "assets": list(assets),
        "portfolios": list(portfolios),
    }


@pytest.fixture
def clean_registry():
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    for key in client.scan_iter(f"{PREFIX}*"):
        client.delete(key)
    yield client
    for key in client.scan_iter(f"{PREFIX}*"):
        client.delete(key)
    client.close()


def test_counts_add_up_over_two_nodes_and_forget_a_node_whose_heartbeat_expired(settings, clean_registry):
    settings.WEBSOCKET_NODE_TTL = 1

    async def scenario():
        a, b = NodeRegistry("node-a"), NodeRegistry("node-b")
        await a.heartbeat([])
        await b.heartbeat([])
        assert await a.admit(_info("c1", 1, ["AAPL", "MSFT"], [7]), limit=5)
        assert await a.admit(_info("c2", 2, ["AAPL"]), limit=5)
        assert await b.admit(_info("c3", 1, ["^GSPC"]), limit=5)
        manager = ConnectionManager()
        assert await asyncio.to_thread(manager.get_connection_count) == 3
        assert await asyncio.to_thread(manager.get_authenticated_user_count) == 2
        assert await asyncio.to_thread(manager.get_total_asset_subscriptions) == 4
        assert await asyncio.to_thread(manager.get_total_portfolio_subscriptions) == 1
        assert sorted(c["connection_id"] for c in await asyncio.to_thread(manager.get_user_connections, 1)) == [
            "c1",
            "c3",
        ]
        assert await asyncio.to_thread(subscribed_symbols) == {"AAPL", "MSFT", "^GSPC"}
        # node-b dies (no more heartbeats); node-a keeps beating.
        await asyncio.sleep(1.3)
        await a.heartbeat([])
        assert await asyncio.to_thread(manager.get_connection_count) == 2
        assert await asyncio.to_thread(subscribed_symbols) == {"AAPL", "MSFT"}
        assert not clean_registry.exists(f"{PREFIX}conns:node-b")  # swept
        await a.close()
        await b.close()

    run(scenario)


def test_per_user_limit_counts_connections_on_every_live_node(clean_registry):
    async def scenario():
        a, b = NodeRegistry("node-a"), NodeRegistry("node-b")
        await a.heartbeat([])
        await b.heartbeat([])
        assert await a.admit(_info("c1", 9), limit=2)
        assert await b.admit(_info("c2", 9), limit=2)
        assert not await a.admit(_info("c3", 9), limit=2)
        assert await a.admit(_info("c4", 10), limit=2)  # another user is not affected
        await b.release(_info("c2", 9))
        assert await a.admit(_info("c3", 9), limit=2)
        await a.close()
        await b.close()

    run(scenario)


def test_a_node_rewrites_its_entries_after_redis_lost_them(clean_registry):
    async def scenario():
        node = NodeRegistry("node-a")
        await node.heartbeat([])
        info = _info("c1", 4, ["AAPL"])
        assert await node.admit(info, limit=5)
        for key in clean_registry.scan_iter(f"{PREFIX}*"):  # as after a Redis restart
            clean_registry.delete(key)
        await node.heartbeat([info])
        manager = ConnectionManager()
        assert await asyncio.to_thread(manager.get_connection_count) == 1
        assert clean_registry.hget(f"{PREFIX}users:node-a", "4") == b"1"
        await node.close()

    run(scenario)


def test_live_consumers_are_counted_with_their_subscriptions(clean_registry, token):
    async def scenario():
        comm = communicator(token=token)
        hello = await connected(comm)
        await send(comm, "subscribe_asset", symbol="BRK.B")
        await receive(comm)
        manager = ConnectionManager()
        [info] = await asyncio.to_thread(manager.connections)
        assert info["connection_id"] == hello["connection_id"]
        assert info["assets"] == ["BRK.B"]
        assert info["username"] == "alice"
        assert await asyncio.to_thread(subscribed_symbols) == {"BRK.B"}
        await comm.disconnect()
        assert await asyncio.to_thread(manager.get_connection_count) == 0

    run(scenario)


def test_notification_event_reaches_its_owners_connection(clean_registry, token):
    from backend.realtime.events import notification_event
    from backend.realtime.publish import publish_batch

    async def scenario():
        comm = communicator(token=token)
        hello = await connected(comm)
        user_id = int(hello["data"]["user_id"])
        sent = await asyncio.to_thread(publish_batch, [notification_event(user_id, {"message": "hi"})])
        assert sent == 1
        message = await receive(comm)
        assert (message["type"], message["data"]) == ("notification", {"message": "hi"})
        await comm.disconnect()

    run(scenario)
