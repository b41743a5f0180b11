"""The per-connection outbox: a slow client's memory stays bounded and it gets the latest
value per subscription; a batch leaves in one write; frames are valid RFC 6455."""

from __future__ import annotations

import asyncio
import json

from consumers.outbox import (
    MAX_UNCOALESCED,
    Outbox,
    envelope_prefix,
    transport_buffered,
    transport_write,
    ws_text_frame,
)


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0

    def write(self, data: bytes) -> None:
        self.writes.append(data)


class FakeProtocol:
    STATE_OPEN = 3
    _perMessageCompress = None

    def __init__(self) -> None:
        self.state = 3
        self.transport = FakeTransport()
        self.sent: list[bytes] = []

    def sendMessage(self, payload: bytes, binary: bool) -> None:
        self.sent.append(payload)


def _decode_frames(data: bytes) -> list[dict]:
    out = []
    while data:
        assert data[0] == 0x81
        n = data[1]
        head = 2
        if n == 126:
            n, head = int.from_bytes(data[2:4], "big"), 4
        elif n == 127:
            n, head = int.from_bytes(data[2:10], "big"), 10
        out.append(json.loads(data[head : head + n]))
        data = data[head + n :]
    return out


def _update(symbol: str, price: float) -> tuple[tuple[str, str], str]:
    data = json.dumps({"symbol": symbol, "price": price})
    return ("asset_update", f"asset.{symbol}"), envelope_prefix("asset_update", data, "2026-11-21T00:00:00Z")


def test_frames_are_rfc6455_text_frames_for_every_length_class():
    for n in (0, 125, 126, 65535, 65536):
        payload = json.dumps({"p": "x" * n}).encode()
        assert _decode_frames(ws_text_frame(payload)) == [{"p": "x" * n}]


def test_one_batch_for_a_client_is_one_transport_write_with_increasing_seq():
    async def scenario():
        protocol = FakeProtocol()
        outbox = Outbox("c-1", send_text=None, protocol=protocol)  # type: ignore[arg-type]
        outbox.deliver([_update("AAPL", 1.0), _update("MSFT", 2.0), (None, envelope_prefix("notification", "{}", "t"))])
        assert len(protocol.transport.writes) == 1
        frames = _decode_frames(protocol.transport.writes[0])
        assert [f["seq"] for f in frames] == [1, 2, 3]
        assert {f["connection_id"] for f in frames} == {"c-1"}
        assert [f["type"] for f in frames] == ["asset_update", "asset_update", "notification"]

    asyncio.run(scenario())


def test_a_client_that_stops_reading_keeps_only_the_latest_value_per_symbol(settings):
    settings.WEBSOCKET_SLOW_CLIENT_BUFFER_BYTES = 1000

    async def scenario():
        protocol = FakeProtocol()
        outbox = Outbox("c-1", send_text=None, protocol=protocol)  # type: ignore[arg-type]
        protocol.transport._tempDataLen = 5000  # the kernel is not taking our bytes
        for tick in range(1000):
            outbox.deliver([_update("AAPL", float(tick)), _update("MSFT", float(-tick))])
        assert protocol.transport.writes == []
        assert outbox.pending == 2  # bounded, whatever the number of updates
        protocol.transport._tempDataLen = 0  # the client reads again
        await asyncio.sleep(0.1)
        frames = _decode_frames(b"".join(protocol.transport.writes))
        assert [(f["data"]["symbol"], f["data"]["price"]) for f in frames] == [("AAPL", 999.0), ("MSFT", -999.0)]
        assert [f["seq"] for f in frames] == [1, 2]

    asyncio.run(scenario())


def test_uncoalescable_events_for_a_stuck_client_are_capped(settings):
    settings.WEBSOCKET_SLOW_CLIENT_BUFFER_BYTES = 0

    async def scenario():
        protocol = FakeProtocol()
        outbox = Outbox("c-1", send_text=None, protocol=protocol)  # type: ignore[arg-type]
        protocol.transport._tempDataLen = 1
        for i in range(MAX_UNCOALESCED * 3):
            outbox.deliver([(None, envelope_prefix("notification", json.dumps({"message": str(i)}), "t"))])
        assert outbox.pending == MAX_UNCOALESCED
        assert outbox.dropped == MAX_UNCOALESCED * 2
        outbox.close()

    asyncio.run(scenario())


def test_buffered_bytes_of_a_twisted_transport():
    transport = FakeTransport()
    transport.dataBuffer = b"x" * 100
    transport.offset = 40
    transport._tempDataLen = 7
    assert transport_buffered(transport) == 67
    assert transport_buffered(object()) == 0


class FakeSocket:
    def __init__(self, accept: int | None, error: type[Exception] | None = None) -> None:
        self.accept, self.error, self.sent = accept, error, b""

    def send(self, data: bytes) -> int:
        if self.error:
            raise self.error()
        n = len(data) if self.accept is None else min(self.accept, len(data))
        self.sent += data[:n]
        return n


def _socket_transport(sock: FakeSocket) -> FakeTransport:
    transport = FakeTransport()
    transport.socket = sock  # type: ignore[attr-defined]
    transport.connected = 1  # type: ignore[attr-defined]
    transport.disconnecting = 0  # type: ignore[attr-defined]
    return transport


def test_an_idle_transport_is_written_with_one_send_and_the_rest_is_buffered_in_order():
    whole = _socket_transport(FakeSocket(accept=None))
    transport_write(whole, b"abcdef")
    assert (whole.socket.sent, whole.writes) == (b"abcdef", [])  # type: ignore[attr-defined]
    partial = _socket_transport(FakeSocket(accept=2))
    transport_write(partial, b"abcdef")
    assert (partial.socket.sent, partial.writes) == (b"ab", [b"cdef"])  # type: ignore[attr-defined]
    full = _socket_transport(FakeSocket(accept=0, error=BlockingIOError))
    transport_write(full, b"abc")
    assert full.writes == [b"abc"]


def test_a_transport_already_holding_bytes_is_never_overtaken():
    transport = _socket_transport(FakeSocket(accept=None))
    transport._tempDataLen = 10
    transport_write(transport, b"later")
    assert transport.socket.sent == b""  # type: ignore[attr-defined]
    assert transport.writes == [b"later"]
