"""config/web.py with real processes: WEB_CONCURRENCY Daphne children really share one port,
each receives a published batch and serves its own sockets, the registry counts them all, a
child that dies is started again, and SIGTERM to the parent stops every child."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import websockets
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from backend.market.models import Asset, Quote
from backend.realtime.events import asset_event
from backend.realtime.publish import publish_batch
from backend.realtime.registry import ConnectionManager
from tests.live import LiveProcess, free_port, process_env, wait_for_port

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@contextmanager
def web(processes: int) -> Iterator[tuple[LiveProcess, int]]:
    port = free_port()
    argv = [sys.executable, "-m", "config.web", "--bind", "127.0.0.1", "--port", str(port), "config.asgi:application"]
    # One test user opens as many connections as it takes to reach both processes.
    env = process_env(WEB_CONCURRENCY=str(processes), WEBSOCKET_MAX_CONNECTIONS_PER_USER="100")
    proc = LiveProcess("web", argv, env)
    try:
        wait_for_port(port)
        yield proc, port
    finally:
        proc.stop()


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(t) for t in text)
    return found


def children_when(pid: int, ok: Callable[[set[int]], bool], timeout: float = 30) -> set[int]:
    """The parent's children once `ok` holds for them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = children(pid)
        if ok(found):
            return found
        time.sleep(0.1)
    raise TimeoutError(f"children of {pid}: {children(pid)}")


@pytest.fixture
def token() -> str:
    return Token.objects.create(user=User.objects.create_user("webber")).key


@pytest.fixture
def quoted() -> Asset:
    asset = Asset.objects.create(symbol="MSFT", tracking_status=Asset.TrackingStatus.TRACKED)
    now = datetime.now(UTC)
    Quote.objects.create(asset=asset, price=Decimal("410.5"), source="simulated", quoted_at=now, fetched_at=now)
    return asset


def test_two_processes_share_the_port_and_each_serves_a_published_batch_to_its_own_sockets(token, quoted):
    headers = {"Authorization": f"Token {token}"}

    async def scenario(port: int) -> tuple[set[str], int, list[dict]]:
        sockets = []
        nodes: set[str] = set()
        manager = ConnectionManager()
        # The kernel hands each connection to whichever child accepts first: open clients
        # until both children serve some (the registry names each connection's process).
        for _ in range(60):
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws/realtime/", additional_headers=headers)
            sockets.append(ws)
            assert json.loads(await ws.recv())["type"] == "connection"
            await ws.send(json.dumps({"type": "subscribe_asset", "data": {"symbol": "MSFT"}}))
            while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "asset_update":
                pass  # `subscribed`, then the snapshot
            nodes = {c["node"] for c in await asyncio.to_thread(manager.connections)}
            if len(nodes) == 2 and len(sockets) >= 4:
                break
        counted = await asyncio.to_thread(manager.get_connection_count)
        payload = {
            "symbol": "MSFT",
            "price": Decimal("411.25"),
            "change": None,
            "change_percent": None,
            "volume": None,
            "high": None,
            "low": None,
            "market_cap": None,
            "previous_close": None,
            "last_updated": "2026-12-06T01:00:00Z",
            "source": "simulated",
        }
        assert await asyncio.to_thread(publish_batch, [asset_event(payload)]) == 1  # type: ignore[arg-type]
        got = []
        for ws in sockets:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            got.append(message)
            await ws.close()
        return nodes, counted, got

    with web(2) as (proc, port):
        children_when(proc.proc.pid, lambda found: len(found) == 2)
        nodes, counted, got = asyncio.run(scenario(port))
    assert len(nodes) == 2, "both processes served connections"
    assert counted == len(got)  # the registry counts the connections of both processes
    assert all(m["type"] == "asset_update" and m["data"]["price"] == 411.25 for m in got)


def test_a_dead_child_is_started_again_and_sigterm_to_the_parent_stops_every_child():
    with web(2) as (proc, port):
        first = children_when(proc.proc.pid, lambda found: len(found) == 2)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        again = children_when(proc.proc.pid, lambda found: len(found) == 2 and victim not in found)
        proc.wait_for_log("restarting in")
        assert (first - {victim}) <= again  # the other child was left alone
        wait_for_port(port)
        os.kill(proc.proc.pid, signal.SIGTERM)  # the parent only, as a process manager does
        assert proc.proc.wait(timeout=40) == 0
        for pid in again:
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_an_unusable_setting_is_a_clear_error_not_a_crash_loop():
    env = process_env(WEB_CONCURRENCY="two")
    result = subprocess.run(
        [sys.executable, "-m", "config.web", "--port", str(free_port()), "config.asgi:application"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "WEB_CONCURRENCY='two' is not a whole number" in result.stderr


def test_sighup_replaces_every_child_while_the_port_stays_open():
    with web(2) as (proc, port):
        old = children_when(proc.proc.pid, lambda found: len(found) == 2)
        os.kill(proc.proc.pid, signal.SIGHUP)
        new = children_when(proc.proc.pid, lambda found: len(found) == 2 and not (found & old), timeout=60)
        proc.wait_for_log("reloading")
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # never refused: the parent held the socket throughout
        assert proc.proc.poll() is None
    assert len(new) == 2
