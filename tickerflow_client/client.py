"""An asyncio client of /ws/realtime/ (docs/protocol.md) on the `websockets` library.

It behaves as the JavaScript client (clients/js/src/tickerflow-client.js) does:

- Subscriptions are remembered as intent: one made before the connection is up is sent when
  it is, and every one is sent again after a reconnect (the server keeps none across
  connections and answers each subscribe with a fresh snapshot).
- Reconnects wait a full-jitter exponential backoff: uniform in [0, min(30 s, 1 s x 2^n)),
  capped at 4 s while no attempt reaches a server (refused connections).
- Close codes 4401/4403 mean the token is refused: retrying cannot help, so the client stops
  for good (status `signed_out`).
- `seq` counts 1, 2, 3... per connection; a gap means frames were lost, so the client
  re-subscribes (at most once per `min_resync_interval`, later gaps folded into one).
- It sends `ping` every 30 s so the server does not close it as idle (4408).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random as random_module
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.uri import parse_uri

from .messages import ConnectionData, InvalidFrame, Message, parse_message
from .rules import (
    BASE_DELAY,
    MAX_DELAY,
    MIN_RESYNC_INTERVAL,
    NORMAL_CLOSURE,
    PING_INTERVAL,
    SIGNED_OUT_CODES,
    UNREACHED_MAX_DELAY,
    Gap,
    ServerError,
    Socket,
    Status,
    backoff_delay,
)
from .subscriptions import Subscriptions

logger = logging.getLogger("tickerflow_client")


T = TypeVar("T")
Handler = Callable[[Message], None]


class TickerflowClient(Subscriptions):
    """One connection to /ws/realtime/, kept open until `close()` or a 4401/4403.

    Read messages with `async for message in client` (a bounded buffer of `queue_size`,
    the oldest dropped when full and counted in `dropped`), with `on(type, handler)`, or
    with the `on_*` callbacks; callbacks are plain functions called on the event loop.

        async with TickerflowClient("ws://localhost:8000/ws/realtime/", token=key) as client:
            await client.subscribe_asset("AAPL")
            async for message in client:
                if message["type"] == "asset_update":
                    print(message["data"]["symbol"], message["data"]["price"])
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        ping_interval: float = PING_INTERVAL,
        base_delay: float = BASE_DELAY,
        max_delay: float = MAX_DELAY,
        unreached_max_delay: float = UNREACHED_MAX_DELAY,
        min_resync_interval: float = MIN_RESYNC_INTERVAL,
        open_timeout: float = 10.0,
        queue_size: int = 1000,
        random: Callable[[], float] = random_module.random,
        on_message: Handler | None = None,
        on_status_change: Callable[[Status], None] | None = None,
        on_connect: Callable[[ConnectionData], None] | None = None,
        on_disconnect: Callable[[int | None], None] | None = None,
        on_gap: Callable[[Gap], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        parse_uri(url)  # a malformed URL fails here, not on every reconnect
        self.url = url
        self.headers = dict(headers or {})
        if token:
            self.headers["Authorization"] = f"Token {token}"
        self.ping_interval = ping_interval
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.unreached_max_delay = unreached_max_delay
        self.min_resync_interval = min_resync_interval
        self.open_timeout = open_timeout
        self.random = random
        self.on_message = on_message
        self.on_status_change = on_status_change
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.on_gap = on_gap
        self.on_error = on_error

        self.status = Status.DISCONNECTED
        self.is_connected = False
        self.connection_id: str | None = None
        self.last_seq = 0
        self.gaps = 0
        self.reconnect_attempts = 0
        self.next_delay: float | None = None
        self.close_code: int | None = None  # of the last close received
        self.opened = 0  # connections opened (handshakes that succeeded)
        self.dropped = 0  # messages dropped from the full buffer
        self.exception: BaseException | None = None  # what stopped the client unexpectedly

        self._subscriptions: dict[str, tuple[str, dict[str, Any]]] = {}
        self._handlers: dict[str, list[Handler]] = {}
        self._queue: deque[Message] = deque(maxlen=max(0, queue_size))
        self._want_open = False
        self._socket: Socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self._last_resync = float("-inf")
        self._finished = False
        self._changed = asyncio.Event()

    # --- lifecycle ---------------------------------------------------------------------

    def connect(self) -> None:
        """Starts connecting in the background (call it inside a running event loop)."""
        self._want_open = True
        if self._task is None or self._task.done():
            self._finished = False
            self.exception = None
            self._task = asyncio.get_running_loop().create_task(self._run(), name="tickerflow-client")

    async def close(self) -> None:
        """Closes the connection (code 1000) and stops reconnecting; ends `async for`."""
        self._want_open = False
        socket = self._socket
        if socket is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(socket.close(NORMAL_CLOSURE), timeout=5)
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self._finished:
            self._stop(Status.DISCONNECTED)

    async def __aenter__(self) -> TickerflowClient:
        self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def wait_connected(self) -> bool:
        """True once connected (the server's `connection` message came); False when the
        client stopped (signed out, closed). Bound it with `asyncio.timeout`."""
        while not self.is_connected and not self._finished:
            self._changed.clear()
            await self._changed.wait()
        return self.is_connected

    @property
    def stopped(self) -> bool:
        """The client will not reconnect by itself (closed, signed out, or failed)."""
        return self._finished

    async def _run(self) -> None:
        try:
            while self._want_open:
                self._set_status(Status.RECONNECTING if self.reconnect_attempts else Status.CONNECTING)
                opened_before = self.opened
                code = await self._session()
                reached = self.opened > opened_before
                if code in SIGNED_OUT_CODES:
                    self._want_open = False
                    self._stop(Status.SIGNED_OUT)
                    return
                if not self._want_open:
                    break
                cap = self.max_delay if reached else min(self.max_delay, self.unreached_max_delay)
                self.next_delay = backoff_delay(
                    self.reconnect_attempts, base_delay=self.base_delay, max_delay=cap, random=self.random
                )
                self.reconnect_attempts += 1
                self._set_status(Status.RECONNECTING)
                await asyncio.sleep(self.next_delay)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug or a misconfiguration: stop and say so
            logger.exception("tickerflow client stopped")
            self.exception = error
            self._notify(self.on_error, error)
        self._stop(Status.DISCONNECTED)

    async def _session(self) -> int | None:
        """One connection, from handshake to close; returns the close code received."""
        self.last_seq = 0
        self.connection_id = None
        code: int | None = None
        try:
            async with ws_connect(
                self.url, additional_headers=self.headers, open_timeout=self.open_timeout, max_size=2**24
            ) as ws:
                self._socket = ws
                self.opened += 1
                pinger = asyncio.create_task(self._ping_forever())
                try:
                    async for raw in ws:
                        await self.handle_frame(raw)
                finally:
                    pinger.cancel()
                    self._disconnected()
            code = ws.close_code
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
        except (OSError, TimeoutError, InvalidHandshake) as error:
            self._notify(self.on_error, error)
        self.close_code = code
        self._notify(self.on_disconnect, code)
        return code

    def _disconnected(self) -> None:
        self._socket = None
        self.is_connected = False
        self.connection_id = None
        if self._resync_task is not None:
            self._resync_task.cancel()
            self._resync_task = None

    def _stop(self, status: Status) -> None:
        self._disconnected()
        self._finished = True
        self._set_status(status)
        self._changed.set()

    async def _ping_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            await self.ping()

    def _set_status(self, status: Status) -> None:
        if status == self.status:
            return
        self.status = status
        self._changed.set()
        self._notify(self.on_status_change, status)

    def _notify(self, callback: Callable[[T], None] | None, value: T) -> None:
        if callback is None:
            return
        try:
            callback(value)
        except Exception as error:
            if callback is self.on_error:
                logger.exception("tickerflow client: on_error raised")
            else:
                self._notify(self.on_error, error)

    # --- messages ----------------------------------------------------------------------

    async def handle_frame(self, raw: str | bytes) -> None:
        """Handles one server frame (the receive loop calls it for each)."""
        try:
            message = parse_message(raw)
        except InvalidFrame as error:
            self._notify(self.on_error, error)
            return
        seq = message.get("seq")
        if isinstance(seq, int):
            expected = self.last_seq + 1
            self.last_seq = seq
            if seq != expected and message["type"] != "connection":
                self.gaps += 1
                self._notify(self.on_gap, Gap(expected=expected, received=seq))
                await self._resync()
        if message["type"] == "connection":
            self.connection_id = message["data"].get("connection_id")
            self.is_connected = True
            self.reconnect_attempts = 0
            self.next_delay = None
            self._set_status(Status.CONNECTED)
            await self.resubscribe_all()
            self._notify(self.on_connect, message["data"])
        elif message["type"] == "error":
            self._notify(self.on_error, ServerError(message["data"]))
        for handler in [*self._handlers.get(message["type"], ()), *self._handlers.get("*", ())]:
            self._notify(handler, message)
        self._notify(self.on_message, message)
        if self._queue.maxlen:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
            self._queue.append(message)
            self._changed.set()

    def on(self, message_type: str, handler: Handler) -> Callable[[], None]:
        """Calls `handler(message)` for each message of a type ("*": every one); returns a
        function that removes it."""
        self._handlers.setdefault(message_type, []).append(handler)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._handlers[message_type].remove(handler)

        return remove

    def __aiter__(self) -> AsyncIterator[Message]:
        return self.messages()

    async def messages(self) -> AsyncGenerator[Message, None]:
        """Every message as it arrives (across reconnects), until the client stops; then
        raises what stopped it, if it was not a close or a sign-out."""
        while True:
            while self._queue:
                yield self._queue.popleft()
            if self._finished:
                if self.exception is not None:
                    raise self.exception
                return
            self._changed.clear()
            await self._changed.wait()

    async def send(self, message_type: str, data: Mapping[str, Any] | None = None) -> bool:
        """Sends `{"type", "data"}` when a connection is open; returns whether it was sent."""
        socket = self._socket
        if socket is None:
            return False
        try:
            await socket.send(json.dumps({"type": message_type, "data": dict(data or {})}))
        except ConnectionClosed:
            return False
        return True

    async def ping(self) -> bool:
        """The server answers `pong`; any message keeps the connection from being idle."""
        return await self.send("ping", {})

    # --- subscriptions -----------------------------------------------------------------

    async def _resync(self) -> None:
        if self._resync_task is not None:
            return  # one is scheduled: this gap folds into it
        loop = asyncio.get_running_loop()
        wait = self._last_resync + self.min_resync_interval - loop.time()
        if wait <= 0:
            self._last_resync = loop.time()
            await self.resubscribe_all()
        else:
            self._resync_task = loop.create_task(self._resync_later(wait))

    async def _resync_later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        self._resync_task = None
        self._last_resync = asyncio.get_running_loop().time()
        await self.resubscribe_all()
