"""Shared pieces of the fault suite: a beat process and a reconnecting WebSocket client that
behaves like the dashboard's JS client (reconnect with back-off, re-subscribe)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import websockets

from tests.live import LiveProcess, process_env


def start_beat(name: str = "beat", **env: str) -> LiveProcess:
    argv = [sys.executable, "-m", "celery", "--app", "config", "beat", "--loglevel", "INFO", "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler", "--pidfile", ""]  # fmt: skip
    return LiveProcess(name, argv, process_env(**env))


@dataclass
class ReconnectingClient:
    """Subscribes to symbols; on any close reconnects (0.5 s, doubling to 4 s) and subscribes again."""

    url: str
    headers: dict[str, str]
    symbols: list[str]
    updates: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    connects: int = 0
    closes: list[tuple[float, int | None]] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                async with websockets.connect(self.url, additional_headers=self.headers, open_timeout=5) as ws:
                    self.connects += 1
                    delay = 0.5
                    for symbol in self.symbols:
                        await ws.send(json.dumps({"type": "subscribe_asset", "data": {"symbol": symbol}}))
                    while not stop.is_set():
                        try:
                            raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                        except TimeoutError:
                            continue
                        message = json.loads(raw)
                        if message.get("type") == "asset_update":
                            self.updates.append((time.monotonic(), message))
            except websockets.ConnectionClosed as closed:
                self.closes.append((time.monotonic(), closed.rcvd.code if closed.rcvd else None))
            except (OSError, TimeoutError, websockets.InvalidStatus, websockets.InvalidHandshake):
                self.closes.append((time.monotonic(), None))
            if not stop.is_set():
                await asyncio.sleep(delay)
                delay = min(delay * 2, 4.0)

    def prices(self, symbol: str, since: float = 0.0) -> list[float]:
        return [m["data"]["price"] for t, m in self.updates if t >= since and m["data"]["symbol"] == symbol]
