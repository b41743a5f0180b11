"""FakeStream: a local WebSocket server speaking Finnhub's trade stream, scriptable from tests.

Wire format as the real one: the client connects to `/?token=KEY`, sends
`{"type":"subscribe","symbol":S}` / `{"type":"unsubscribe","symbol":S}`; the server sends
`{"type":"trade","data":[{"s","p","t","v","c"}]}` (`t` in ms), `{"type":"ping"}` and
`{"type":"error","msg"}`. The script: `trade`, `trades`, `ping`, `error`, `send_raw` (bad
frames), `drop_all` (cut every connection as a network failure would), `drop_on_connect`
(cut each new connection once it subscribed). The server runs on its own event loop in a
daemon thread, so sync tests and a separate `run_stream` process can both use it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve


@dataclass
class Client:
    token: str
    connected_at: float
    subscriptions: set[str] = field(default_factory=set)
    frames: list[dict[str, Any]] = field(default_factory=list)
    open: bool = True


class FakeStream:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.clients: list[Client] = []
        self._sockets: dict[int, ServerConnection] = {}
        self.drop_on_connect = False
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-stream", daemon=True)
        self._stop: asyncio.Event | None = None
        self.port = 0

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> FakeStream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake stream did not start")
        return self

    def close(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, ping_interval=None, compression=None) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _handler(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "/").query)
        client = Client(token=(query.get("token") or [""])[0], connected_at=time.time())
        with self._lock:
            self.clients.append(client)
            self._sockets[id(client)] = ws
        try:
            async for text in ws:
                message = json.loads(text)
                with self._lock:
                    client.frames.append(message)
                    if message.get("type") == "subscribe":
                        client.subscriptions.add(message["symbol"])
                    elif message.get("type") == "unsubscribe":
                        client.subscriptions.discard(message["symbol"])
                if self.drop_on_connect and message.get("type") == "subscribe":
                    ws.transport.abort()
        except Exception:  # noqa: S110 - a cut connection ends its handler, nothing more
            pass
        finally:
            with self._lock:
                client.open = False
                self._sockets.pop(id(client), None)

    # --- what the client did --------------------------------------------------------------
    @property
    def live(self) -> list[Client]:
        with self._lock:
            return [c for c in self.clients if c.open]

    @property
    def subscriptions(self) -> set[str]:
        """What the live connection follows (the union if there are several)."""
        return set().union(*(c.subscriptions for c in self.live))

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake stream: no {what} within {timeout} s; clients: {self.clients}")
            time.sleep(0.02)

    # --- the script -----------------------------------------------------------------------
    def send_raw(self, text: str) -> int:
        """Send one frame as is to every live connection; returns how many got it."""

        async def send() -> int:
            sockets = list(self._sockets.values())
            for ws in sockets:
                await ws.send(text)
            return len(sockets)

        return asyncio.run_coroutine_threadsafe(send(), self.loop).result(10)

    def trades(self, entries: list[dict[str, Any]]) -> int:
        return self.send_raw(json.dumps({"type": "trade", "data": entries}))

    def trade(self, symbol: str, price: float, *, at_ms: int | None = None, volume: int = 100) -> int:
        """One trade now (or at `at_ms`); returns its time in ms."""
        at = at_ms if at_ms is not None else int(time.time() * 1000)
        self.trades([{"s": symbol, "p": price, "t": at, "v": volume, "c": ["1"]}])
        return at

    def ping(self) -> int:
        return self.send_raw(json.dumps({"type": "ping"}))

    def error(self, message: str) -> int:
        return self.send_raw(json.dumps({"type": "error", "msg": message}))

    def drop_all(self) -> None:
        """Cut every connection without a closing handshake (a network failure)."""

        async def drop() -> None:
            for ws in list(self._sockets.values()):
                ws.transport.abort()

        asyncio.run_coroutine_threadsafe(drop(), self.loop).result(10)


@contextmanager
def fake_stream() -> Iterator[FakeStream]:
    server = FakeStream().start()
    try:
        yield server
    finally:
        server.close()
