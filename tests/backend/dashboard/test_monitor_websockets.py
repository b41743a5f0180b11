from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token

from backend.market.models import Asset, Quote
from backend.realtime.registry import PREFIX
from consumers.registry import NodeRegistry
from tests.live import daphne


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


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_monitor_live_prints_events_as_they_arrive(capsys):
    user = User.objects.create_user("watcher", password="pw-watcher-123")
    token = Token.objects.create(user=user).key
    asset = Asset.objects.create(symbol="MSFT", tracking_status="tracked")
    now = datetime.now(UTC)
    Quote.objects.create(asset=asset, price=Decimal("412.5"), source="simulated", quoted_at=now, fetched_at=now)
    with daphne() as (_, port):
        url = f"ws://127.0.0.1:{port}/ws/realtime/"
        started = time.monotonic()
        call_command(
            "monitor_websockets", "--live", "--url", url, "--token", token, "--symbols", "msft", "--seconds", "2"
        )
        elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert "-- connected" in out
    assert "#1  connection  " in out
    assert '#2  subscribed  {"channel": "asset", "symbol": "MSFT"}' in out
    assert "#3  asset_update  " in out  # the snapshot
    assert '"price": 412.5' in out
    assert out.rstrip().endswith("-- disconnected")
    assert 2 <= elapsed < 10


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_monitor_live_fails_on_a_refused_token():
    with daphne() as (_, port), pytest.raises(CommandError, match=r"refused the token \(close code 4401\)"):
        call_command("monitor_websockets", "--live", "--url", f"ws://127.0.0.1:{port}/ws/realtime/", "--token", "nope")


def test_monitor_live_needs_a_token_and_well_formed_symbols(monkeypatch):
    monkeypatch.delenv("TICKERFLOW_TOKEN", raising=False)
    with pytest.raises(CommandError, match="--live needs --token"):
        call_command("monitor_websockets", "--live")
    with pytest.raises(CommandError, match="not a symbol"):
        call_command("monitor_websockets", "--live", "--token", "k", "--symbols", "A B")
