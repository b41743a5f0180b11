from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis
from django.conf import settings
from django.core.management import call_command

from backend.realtime.registry import PREFIX
from consumers.registry import NodeRegistry


@pytest.fixture
def two_nodes():
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"{PREFIX}*"):
        client.delete(key)

    def info(conn, uid, name, node, assets, portfolios):
        return {
            "connection_id": conn,
            "node": node,
            "user_id": uid,
            "username": name,
            "auth": "token",
            "connected_at": time.time() - 5,
            "assets": assets,
            "portfolios": portfolios,
        }

    async def populate():
        a, b = NodeRegistry("node-a"), NodeRegistry("node-b")
        await a.heartbeat([])
        await b.heartbeat([])
        await a.admit(info("c1", 1, "alice", "node-a", ["AAPL", "^GSPC"], [3]), limit=5)
        await b.admit(info("c2", 1, "alice", "node-b", ["AAPL"], []), limit=5)
        await b.admit(info("c3", 2, "bob", "node-b", ["MSFT"], [4]), limit=5)
        await a.close()
        await b.close()

    asyncio.run(populate())
    yield
    for key in client.scan_iter(f"{PREFIX}*"):
        client.delete(key)
    client.close()


def test_monitor_prints_totals_over_every_daphne_process(two_nodes, capsys):
    call_command("monitor_websockets")
    out = capsys.readouterr().out
    assert "Daphne processes alive: 2" in out
    assert "Connections: 3" in out
    assert "Authenticated users: 2" in out
    assert "Asset subscriptions: 4" in out
    assert "Portfolio subscriptions: 2" in out
    assert "Symbols subscribed: AAPL, MSFT, ^GSPC" in out
    assert "c1" not in out  # only with --detailed


def test_monitor_detailed_for_one_user_and_json_export(two_nodes, capsys, tmp_path):
    target = tmp_path / "ws.json"
    call_command("monitor_websockets", "--detailed", "--user", "alice", "--export", str(target))
    out = capsys.readouterr().out
    assert "Connections of alice: 2" in out
    assert "c1" in out
    assert "c2" in out
    assert "c3" not in out
    report = json.loads(target.read_text())
    assert report["total_connections"] == 2
    assert sorted(c["connection_id"] for c in report["connections"]) == ["c1", "c2"]
    assert {c["node"] for c in report["connections"]} == {"node-a", "node-b"}
    assert report["subscribed_symbols"] == ["AAPL", "^GSPC"]
