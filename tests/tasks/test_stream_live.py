"""The stream process for real: `manage.py run_stream` against the fake provider, a real
Daphne and a `websockets` client (a trade reaches the browser as `asset_update`), and the
Procfile's `stream` line idling quietly when streaming is off."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import websockets
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from backend.market.models import Asset
from tests.fakes.stream import FakeStream, fake_stream
from tests.live import LiveProcess, daphne, process_env

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
BASE_DIR = Path(__file__).resolve().parents[2]


def procfile_line(name: str) -> str:
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            return command.strip()
    raise KeyError(name)


def test_the_procfile_stream_line_idles_quietly_when_streaming_is_off():
    env = process_env(
        SECRET_KEY="stream-procfile-" + "x" * 40, ALLOWED_HOSTS="127.0.0.1", MARKET_STREAM_SOURCE="",
        PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin",
    )  # fmt: skip
    env.pop("DJANGO_SETTINGS_MODULE")  # the Procfile line chooses production itself
    proc = LiveProcess("procfile-stream", ["bash", "-c", procfile_line("stream")], env)
    try:
        proc.wait_for_log("stream: off", timeout=60)
        said = proc.log()
        time.sleep(2)
        assert proc.proc.poll() is None, proc.log()
        assert proc.log() == said  # said once, then quiet
    finally:
        proc.stop()
    assert proc.proc.returncode == 0, proc.log()


async def _recv_type(ws, kind: str, wait: float = 15) -> dict:
    deadline = time.monotonic() + wait
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=max(0.1, deadline - time.monotonic())))
        if message["type"] == kind:
            return message


def _health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health/", timeout=15) as response:
        return json.loads(response.read())


def test_a_trade_sent_by_the_provider_reaches_a_subscribed_client_as_asset_update():
    user = User.objects.create_user("streamer", password="pw-stream-123")
    token = Token.objects.create(user=user).key
    Asset.objects.create(symbol="AAPL", tracking_status="tracked")

    async def scenario(port: int, fake: FakeStream) -> tuple[dict, int, dict]:
        headers = {"Authorization": f"Token {token}"}
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/realtime/", additional_headers=headers) as ws:
            assert json.loads(await ws.recv())["type"] == "connection"
            await ws.send(json.dumps({"type": "subscribe_asset", "data": {"symbol": "AAPL"}}))
            await _recv_type(ws, "subscribed")
            # The stream re-reads the tracked symbols (held or subscribed) every few seconds.
            await asyncio.to_thread(fake.wait_for, lambda: "AAPL" in fake.subscriptions, 20, "AAPL subscribed")
            sent = await asyncio.to_thread(fake.trade, "AAPL", 191.23)
            update = await _recv_type(ws, "asset_update")
            health = await asyncio.to_thread(_health, port)
            return update, sent, health

    with fake_stream() as fake, daphne() as (_, port):
        env = process_env(
            MARKET_STREAM_SOURCE="finnhub", FINNHUB_WS_URL=fake.url, FINNHUB_API_KEY="live-key",
            MARKET_STREAM_FLUSH_MS="100",
        )  # fmt: skip
        stream = LiveProcess("stream", [sys.executable, "manage.py", "run_stream"], env)
        try:
            stream.wait_for_log("stream: connected", timeout=60)
            update, sent_ms, health = asyncio.run(scenario(port, fake))
        finally:
            stream.stop(signal.SIGTERM)
    assert stream.proc.returncode == 0, stream.log()[-3000:]
    assert "stream: stopped" in stream.log()
    assert fake.clients[0].token == "live-key"
    data = update["data"]
    assert (data["symbol"], data["price"], data["source"]) == ("AAPL", 191.23, "finnhub_ws")
    traded_at = datetime.fromtimestamp(sent_ms // 1000, tz=UTC) + timedelta(milliseconds=sent_ms % 1000)
    assert data["last_updated"] == traded_at.isoformat().replace("+00:00", "Z")
    state = health["services"]["stream"]
    assert (state["running"], state["connected"], state["symbols_followed"]) == (True, True, 1)
    assert state["symbols"]["AAPL"]["last_trade_age_seconds"] < 30
