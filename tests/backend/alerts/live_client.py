"""A real WebSocket client on its own thread and event loop, collecting every message it
receives: live alert tests drive the pipeline from the test's thread meanwhile."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import websockets


class Tab:
    """One browser tab's connection: `messages` fills as frames arrive."""

    def __init__(self, port: int, token: str) -> None:
        self.url = f"ws://127.0.0.1:{port}/ws/realtime/"
        self.headers = {"Authorization": f"Token {token}"}
        self.messages: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._ws: Any = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Tab:
        self._thread.start()
        if not self._ready.wait(20) or self.error:
            raise RuntimeError(f"no connection to {self.url}: {self.error}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ws is not None:
            # Not awaited here: the read loop ends with the close and `main` finishes it.
            asyncio.run_coroutine_threadsafe(self._ws.close(), self._loop)
        self._thread.join(10)
        self._loop.close()

    def _run(self) -> None:
        async def main() -> None:
            try:
                async with websockets.connect(self.url, additional_headers=self.headers) as ws:
                    self._ws = ws
                    async for raw in ws:
                        self.messages.append(json.loads(raw))
                        if self.messages[-1]["type"] == "connection":
                            self._ready.set()
            except websockets.ConnectionClosed:
                pass
            except BaseException as error:
                self.error = error
                self._ready.set()

        self._loop.run_until_complete(main())

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def wait(self, test: Callable[[], object], within: float = 30, what: str = "message") -> None:
        deadline = time.monotonic() + within
        while not test():
            if self.error or time.monotonic() > deadline:
                raise TimeoutError(f"no {what} within {within} s: {self.error or self.messages[-5:]}")
            time.sleep(0.05)

    def flush(self) -> None:
        """Wait until the server has answered a ping: whatever was sent to this tab before
        the ping is in `messages` now."""
        pongs = len(self.of_type("pong"))
        asyncio.run_coroutine_threadsafe(self._ws.send(json.dumps({"type": "ping"})), self._loop).result(10)
        self.wait(lambda: len(self.of_type("pong")) > pongs, 10, "pong")
