"""One connection's outgoing frames: the envelope's `seq`, and a bounded queue that keeps
only the latest value per subscription for a client that stops reading.

Daphne has no send backpressure (daphne#170): every frame handed to it lands in the Twisted
transport's buffer, however slow the client. Under Daphne we reach the connection's protocol
(the `send` callable Daphne gives the application is `partial(server.handle_reply, protocol)`)
and look at the transport's buffer before writing; while it is over
WEBSOCKET_SLOW_CLIENT_BUFFER_BYTES the frames wait here, where a newer `asset_update` for the
same symbol (or `portfolio_update` for the same portfolio) replaces the older one. A batch's
frames for one client leave in one transport write. Under another server (the test
communicator) frames go through the ordinary ASGI send.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import struct
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

# Events for which only the latest value matters to a client that fell behind.
COALESCED_TYPES = frozenset({"asset_update", "portfolio_update"})
MAX_UNCOALESCED = 200
RETRY_SECONDS = 0.05


def envelope_prefix(kind: str, data_json: str, timestamp: str) -> str:
    """Everything of the envelope but the per-connection fields, encoded once per event."""
    return f'{{"type":{json.dumps(kind)},"data":{data_json},"timestamp":{json.dumps(timestamp)},'


def encode_data(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def ws_text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented server text frame (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


def daphne_protocol(send: Any) -> Any | None:
    """The autobahn/Daphne protocol behind an ASGI `send`, when it is one we can write to.
    Channels' SessionMiddleware wraps `send` in a bound method keeping the original as
    `real_send` (it only saves a session the consumer modified; ours never does)."""
    for _ in range(8):
        owner = getattr(send, "__self__", None)
        if owner is not None and hasattr(owner, "real_send"):
            send = owner.real_send
            continue
        break
    args = getattr(send, "args", None)
    if not args:
        return None
    protocol = args[0]
    if all(hasattr(protocol, a) for a in ("transport", "sendMessage", "state", "STATE_OPEN")):
        return protocol
    return None


def protocol_options_shared(protocol: Any) -> None:
    """Autobahn copies its ~30 protocol options from the factory into every connection's own
    attribute dict, unless the class has them already: about a kilobyte per idle connection
    for values every connection of the process shares (Daphne sets them once, on its one
    factory). Put them on the protocol class once, so later connections keep none of their own."""
    cls, factory = type(protocol), getattr(protocol, "factory", None)
    if factory is None or getattr(cls, "_tf_options_shared", False):
        return
    for name in getattr(cls, "CONFIG_ATTRS", ()):
        value = getattr(factory, name, None)
        # A function on a class becomes a method bound to each instance: those stay copied.
        if name not in cls.__dict__ and hasattr(factory, name) and not callable(value):
            setattr(cls, name, value)
    cls._tf_options_shared = True


def transport_write(transport: Any, data: bytes) -> None:
    """Write now when the Twisted transport holds nothing: one send() instead of a buffered
    write plus two epoll changes and a loop turn (measured: most of Daphne's per-client cost
    in the fan-out bench). Anything unsent, or any transport without a plain socket (TLS),
    goes through transport.write, so order and error handling stay Twisted's."""
    sock = getattr(transport, "socket", None)
    ready = getattr(transport, "connected", False) and not getattr(transport, "disconnecting", True)
    if sock is not None and ready and transport_buffered(transport) == 0:
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = 0  # Twisted's own write will meet the error and close the connection
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def transport_buffered(transport: Any) -> int:
    """Bytes written to a Twisted transport and not yet taken by the kernel."""
    try:
        return len(transport.dataBuffer) - int(transport.offset) + int(transport._tempDataLen)
    except (AttributeError, TypeError):
        return 0


class Outbox:
    def __init__(self, connection_id: str, send_text: Callable[[str], Awaitable[None]], protocol: Any | None) -> None:
        self.connection_id = connection_id
        self.seq = 0
        self.dropped = 0
        self.closed = False
        self._send_text = send_text
        self._protocol = protocol
        self._pending: OrderedDict[Hashable, str] = OrderedDict()
        self._uncoalesced = 0
        self._counter = itertools.count()
        self._retry: asyncio.TimerHandle | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._limit: int = settings.WEBSOCKET_SLOW_CLIENT_BUFFER_BYTES
        self._held = 0
        self._replies: list[bytes] = []

    def envelope(self, prefix: str) -> str:
        self.seq += 1
        return f'{prefix}"connection_id":"{self.connection_id}","seq":{self.seq}}}'

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def send_now(self, kind: str, data: Any, timestamp: str) -> None:
        """Replies (acks, errors, snapshots) go out at once; seq is taken at write time so
        the client sees 1, 2, 3... in order whatever is queued."""
        text = self.envelope(envelope_prefix(kind, encode_data(data), timestamp))
        protocol = self._protocol
        if protocol is None:
            await self._send_text(text)
        elif getattr(protocol, "_perMessageCompress", None) is not None:
            if protocol.state == protocol.STATE_OPEN:
                protocol.sendMessage(text.encode(), False)
        else:
            # The replies of every message read in this loop turn (a client sends its
            # subscribes together) leave in one socket write, not one each: in a reconnect
            # storm the per-write cost was most of the server's time (docs/scale.md).
            self._replies.append(ws_text_frame(text.encode()))
            if len(self._replies) == 1:
                asyncio.get_running_loop().call_soon(self._write_replies)

    def _take_replies(self) -> bytes:
        data = b"".join(self._replies)
        self._replies.clear()
        return data

    def _write_replies(self) -> None:
        protocol = self._protocol
        data = self._take_replies()
        if data and protocol is not None and protocol.state == protocol.STATE_OPEN:
            transport_write(protocol.transport, data)

    def hold(self) -> None:
        """Queue pushes (still coalescing) until `release`: a subscribe's ack and snapshot go
        out before any update that arrived while the snapshot was read."""
        self._held += 1

    def release(self) -> None:
        self._held -= 1
        if self._held == 0 and self._pending:
            self._kick()

    def _kick(self) -> None:
        if self._protocol is not None:
            self.flush()
        elif self._drain_task is None or self._drain_task.done():
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    def deliver(self, items: list[tuple[Hashable | None, str]]) -> None:
        """Queue one batch's events for this client (key None: never coalesced) and write."""
        if self.closed:
            return
        pending = self._pending
        for key, prefix in items:
            if key is None:
                key = next(self._counter)
                self._uncoalesced += 1
            else:
                pending.pop(key, None)
            pending[key] = prefix
        while self._uncoalesced > MAX_UNCOALESCED:
            self._drop_oldest_uncoalesced()
        if not self._held:
            self._kick()

    def _drop_oldest_uncoalesced(self) -> None:
        for key in self._pending:
            if isinstance(key, int):
                del self._pending[key]
                self._uncoalesced -= 1
                self.dropped += 1
                return
        self._uncoalesced = 0

    def flush(self) -> None:
        self._retry = None
        protocol = self._protocol
        if self.closed or self._held or not self._pending or protocol is None:
            return
        if protocol.state != protocol.STATE_OPEN:
            self._pending.clear()
            return
        transport = protocol.transport
        if transport_buffered(transport) > self._limit:
            if self._retry is None:
                self._retry = asyncio.get_running_loop().call_later(RETRY_SECONDS, self.flush)
            return
        texts = [self.envelope(p).encode() for p in self._pending.values()]
        self._pending.clear()
        self._uncoalesced = 0
        if getattr(protocol, "_perMessageCompress", None) is None:
            # Replies queued before these pushes took lower seqs: they go first.
            transport_write(transport, self._take_replies() + b"".join(ws_text_frame(t) for t in texts))
        else:
            for text in texts:
                protocol.sendMessage(text, False)

    async def _drain(self) -> None:
        while self._pending and not self.closed and not self._held:
            key, prefix = self._pending.popitem(last=False)
            if isinstance(key, int):
                self._uncoalesced -= 1
            await self._send_text(self.envelope(prefix))

    def close(self) -> None:
        self._write_replies()  # before the close frame the caller sends next
        self.closed = True
        self._pending.clear()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
