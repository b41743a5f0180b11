"""The soak's WebSocket clients, in a process of their own: each one the project's Python
client (tickerflow_client: full-jitter reconnect, resubscribe, resync on a seq gap, the same
rules as the JS client) with token auth, recording what it was sent and when.

Per client it records every connection (opened on the server's `connection` message,
closed on the socket's close), when each subscription was acknowledged, which asset_update
was the snapshot that follows a `subscribed` answer, every (symbol, last_updated) it received
with the first time it arrived, and its longest silence between two asset_updates."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tickerflow_client import TickerflowClient

WAVE = 40  # handshakes at once: Daphne's listen backlog is 50


def lu_epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


class Recorder:
    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        self.connections: list[dict[str, Any]] = []
        self.received: dict[str, dict[int, float]] = {s: {} for s in symbols}
        self.snapshots: list[tuple[float, str, int]] = []
        self.awaiting_snapshot: set[str] = set()
        self.last_update: float | None = None
        self.longest_gap = 0.0
        self.longest_gap_at = 0.0
        self.failures: list[tuple[float, str]] = []  # handshakes that failed, and why

    def on_message(self, message: Any) -> None:
        now = time.time()
        kind = message["type"]
        if kind == "connection":
            self.connections.append({"open": now, "close": None, "code": None, "acks": {}})
        elif kind == "subscribed" and message["data"].get("channel") == "asset" and self.connections:
            symbol = message["data"]["symbol"]
            self.connections[-1]["acks"].setdefault(symbol, now)
            self.awaiting_snapshot.add(symbol)
        elif kind == "asset_update":
            data = message["data"]
            symbol, lu = data["symbol"], lu_epoch(data["last_updated"])
            self.received.setdefault(symbol, {}).setdefault(lu, now)
            if symbol in self.awaiting_snapshot:
                self.awaiting_snapshot.discard(symbol)
                self.snapshots.append((now, symbol, lu))
            if self.last_update is not None and now - self.last_update > self.longest_gap:
                self.longest_gap, self.longest_gap_at = now - self.last_update, now
            self.last_update = now

    def on_disconnect(self, code: int | None) -> None:
        if self.connections and self.connections[-1]["close"] is None:
            self.connections[-1]["close"], self.connections[-1]["code"] = time.time(), code
        elif code is not None:
            self.failures.append((time.time(), f"closed {code} before `connection`"))
        self.awaiting_snapshot.clear()

    def on_error(self, error: Exception) -> None:
        if not self.connections or self.connections[-1]["close"] is not None:
            self.failures.append((time.time(), f"{type(error).__name__}: {error}"[:200]))

    def as_dict(self, client: TickerflowClient) -> dict[str, Any]:
        return {
            "symbols": self.symbols,
            "connections": self.connections,
            "received": {s: sorted(lus.items()) for s, lus in self.received.items()},
            "snapshots": self.snapshots,
            "longest_gap": self.longest_gap,
            "longest_gap_at": self.longest_gap_at,
            "seq_gaps": client.gaps,
            "failures": self.failures,
            "status": str(client.status),
        }


def clients_main(url: str, plan: list[tuple[str, list[str]]], stop: Any, ready: Any, out: str) -> None:
    """`plan`: (token, symbols) per client. Runs until `stop` is set, then writes `out`."""
    asyncio.run(_clients(url, plan, stop, ready, Path(out)))


async def _clients(url: str, plan: list[tuple[str, list[str]]], stop: Any, ready: Any, out: Path) -> None:
    pairs: list[tuple[TickerflowClient, Recorder]] = []
    for start in range(0, len(plan), WAVE):
        wave = []
        for token, symbols in plan[start : start + WAVE]:
            recorder = Recorder(symbols)
            client = TickerflowClient(
                url,
                token=token,
                queue_size=0,
                on_message=recorder.on_message,
                on_disconnect=recorder.on_disconnect,
                on_error=recorder.on_error,
            )
            for symbol in symbols:
                await client.subscribe_asset(symbol)
            client.connect()
            wave.append((client, recorder))
        for client, _ in wave:
            try:
                async with asyncio.timeout(60):
                    await client.wait_connected()
            except TimeoutError:
                pass
        pairs.extend(wave)
    ready.set()
    # `stop` is a multiprocessing Event: poll it (it cannot be awaited).
    while not stop.is_set():  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    for client, recorder in pairs:
        await client.close()
        recorder.on_disconnect(None)
    records = json.dumps([recorder.as_dict(client) for client, recorder in pairs])
    await asyncio.to_thread(out.write_text, records)
