"""Hostile WebSocket clients against a real Daphne: one that never reads while 10,000 updates
flow; connection churn. The server's memory stays bounded and other clients are unaffected."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time

import psutil  # type: ignore[import-untyped]
import pytest
import websockets
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from backend.market.models import Asset
from backend.realtime.events import asset_event
from backend.realtime.publish import publish_batch
from tests.consumers.test_live_push import _asset_update
from tests.live import daphne

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

SYMBOLS = [f"N{i:02d}" for i in range(100)]


def _rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def test_a_client_that_never_reads_while_10000_updates_flow_leaves_daphne_memory_bounded_and_others_served():
    tokens = [Token.objects.create(user=User.objects.create_user(n)).key for n in ("stuck", "reader")]
    Asset.objects.bulk_create([Asset(symbol=s, tracking_status="tracked") for s in SYMBOLS])

    async def scenario(port: int, pid: int) -> tuple[float, float, float, float]:
        url = f"ws://127.0.0.1:{port}/ws/realtime/"
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.connect(("127.0.0.1", port))
        stuck = await websockets.connect(url, additional_headers={"Authorization": f"Token {tokens[0]}"},
                                         max_queue=1, sock=sock)  # fmt: skip
        reader = await websockets.connect(url, additional_headers={"Authorization": f"Token {tokens[1]}"})
        for ws in (stuck, reader):
            await ws.recv()
            for s in SYMBOLS:
                await ws.send(json.dumps({"type": "subscribe_asset", "data": {"symbol": s}}))
        # The reader drains its acks; the stuck one never reads again.
        acks = 0
        while acks < len(SYMBOLS):
            if json.loads(await asyncio.wait_for(reader.recv(), timeout=10))["type"] == "subscribed":
                acks += 1
        await asyncio.sleep(0.5)
        before = _rss_mb(pid)
        latest: dict[str, float] = {}
        lags: list[float] = []
        for round_ in range(100):  # 100 batches x 100 symbols = 10,000 updates
            events = [asset_event(_asset_update(s, f"{round_ + 1}.5")) for s in SYMBOLS]
            sent = time.monotonic()
            await asyncio.to_thread(publish_batch, events)
            while latest.get("N99") != round_ + 1.5:
                message = json.loads(await asyncio.wait_for(reader.recv(), timeout=10))
                if message["type"] == "asset_update":
                    latest[message["data"]["symbol"]] = message["data"]["price"]
            lags.append(time.monotonic() - sent)
        peak = _rss_mb(pid)
        await reader.close()
        stuck.transport.abort()
        lags.sort()
        return before, peak, lags[len(lags) // 2], lags[int(len(lags) * 0.95)]

    limits = {"WEBSOCKET_RATE_LIMIT_MESSAGES_PER_MINUTE": "1000", "WEBSOCKET_MAX_SUBSCRIPTIONS_PER_CONNECTION": "200"}
    with daphne(**limits) as (web, port):
        before, peak, p50, p95 = asyncio.run(scenario(port, web.proc.pid))
        log = web.log()
    print(f"\nslow client: Daphne RSS {before:.0f} MB before, {peak:.0f} MB after 10,000 updates; "
          f"reader batch latency p50 {p50 * 1000:.0f} ms p95 {p95 * 1000:.0f} ms")  # fmt: skip
    assert peak - before < 60, "the stuck client's backlog is bounded (one value per symbol)"
    assert p95 < 1.0, "the reading client keeps up"
    assert "Traceback" not in log


def test_binary_oversized_flood_and_1000_connect_disconnect_cycles_leave_memory_bounded_and_a_bystander_unaffected():
    tokens = [Token.objects.create(user=User.objects.create_user(n)).key for n in ("churn", "bystander")]

    async def ping_ms(ws: websockets.ClientConnection) -> float:
        start = time.monotonic()
        await ws.send(json.dumps({"type": "ping", "data": {}}))
        while json.loads(await asyncio.wait_for(ws.recv(), timeout=10))["type"] != "pong":
            pass
        return (time.monotonic() - start) * 1000

    async def close_code(ws: websockets.ClientConnection) -> int | None:
        try:
            while True:
                await asyncio.wait_for(ws.recv(), timeout=10)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None

    async def scenario(port: int, pid: int) -> dict[str, float]:
        url = f"ws://127.0.0.1:{port}/ws/realtime/"
        headers = {"Authorization": f"Token {tokens[0]}"}
        bystander = await websockets.connect(url, additional_headers={"Authorization": f"Token {tokens[1]}"})
        await bystander.recv()
        quiet = sorted([await ping_ms(bystander) for _ in range(20)])

        codes: dict[str, int | None] = {}
        async with websockets.connect(url, additional_headers=headers) as ws:
            await ws.recv()
            await ws.send(b"\x00\xff" * 10)
            reply = json.loads(await ws.recv())
            assert (reply["type"], reply["data"]["code"]) == ("error", "invalid_message")
            await ws.send("x" * 70_000)  # far over WEBSOCKET_MESSAGE_SIZE_LIMIT
            codes["oversized"] = await close_code(ws)
        async with websockets.connect(url, additional_headers=headers) as ws:
            await ws.recv()
            with contextlib.suppress(websockets.ConnectionClosed):
                for _ in range(500):  # a flood over the per-minute rate
                    await ws.send(json.dumps({"type": "ping", "data": {}}))
            codes["flood"] = await close_code(ws)

        before = _rss_mb(pid)
        during: list[float] = []
        for i in range(1000):
            async with websockets.connect(url, additional_headers=headers) as ws:
                await ws.recv()
            if i % 50 == 0:
                during.append(await ping_ms(bystander))
        after = _rss_mb(pid)
        await bystander.close()
        during.sort()
        return {"oversized": codes["oversized"] or 0, "flood": codes["flood"] or 0, "before": before, "after": after,
                "quiet_p50": quiet[10], "churn_p50": during[len(during) // 2], "churn_max": during[-1]}  # fmt: skip

    with daphne(WEBSOCKET_MESSAGE_SIZE_LIMIT="1024") as (web, port):
        started = time.monotonic()
        figures = asyncio.run(scenario(port, web.proc.pid))
        took = time.monotonic() - started
        log = web.log()
    print(f"\nhostile: {figures}, {took:.1f} s")
    assert figures["oversized"] == 4413
    assert figures["flood"] == 4429
    assert figures["after"] - figures["before"] < 30, "1,000 connections come and go without leaking"
    assert figures["churn_p50"] < figures["quiet_p50"] + 50
    assert log.count("Traceback") == 0
    assert log.count(" ERROR ") < 5, "no error storm"
