"""The fan-out benchmark's load-generator processes: raw WebSocket clients that connect in
waves with token auth, subscribe to their symbols and record each update's latency."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from datetime import datetime
from functools import partial
from typing import Any

from bench.fanout.designs import client_symbols


def loadgen_main(
    port: int,
    token: str,
    indices: list[int],
    symbols: list[str],
    per_client: int,
    wave: int,
    stop: Any,
    received: Any,
    out: Any,
) -> None:
    asyncio.run(_loadgen(port, token, indices, symbols, per_client, wave, stop, received, out))


class RawClient(asyncio.Protocol):
    """A minimal RFC 6455 client: handshake, masked text frames out, unmasked frames in.
    The `websockets` library costs ~50 us a message in Python; on a 2-core box shared with
    the server that would measure the load generator, not the server."""

    def __init__(self, on_text: Any) -> None:
        self.on_text = on_text
        self.buf = bytearray()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: Any = None
        self.close_code: int | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def handshake(self, port: int, path: str, token: str) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Authorization: Token {token}\r\n\r\n"
            ).encode()
        )

    def send_text(self, text: str) -> None:
        self.send_frame(0x81, text.encode())

    def send_frame(self, first_byte: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes((first_byte, 0x80 | n)) if n < 126 else bytes((first_byte, 0x80 | 126)) + n.to_bytes(2, "big")
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.transport.write(head + mask + masked)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        if not self.opened.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(bytes(buf[:40]).decode(errors="replace")))
                self.transport.close()
                return
            pos = end + 4
            self.opened.set_result(None)
        size = len(buf)
        while size - pos >= 2:
            opcode, n = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif n == 127:
                if size - pos < 10:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + n:
                break
            payload = bytes(buf[pos + head : pos + head + n])
            pos += head + n
            if opcode == 1:
                self.on_text(payload)
            elif opcode == 9:  # Daphne pings every 20 s and drops clients that do not answer
                self.send_frame(0x8A, payload)
            elif opcode == 8:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                if not self.closed.done():
                    self.closed.set_result(None)
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed"))
        if not self.closed.done():
            self.closed.set_result(None)


async def _loadgen(
    port: int,
    token: str,
    indices: list[int],
    symbols: list[str],
    per_client: int,
    wave: int,
    stop: Any,
    received: Any,
    out: Any,
) -> None:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    counts: dict[int, dict[str, int]] = {}
    total = [0]
    clients: dict[int, RawClient] = {}
    failed = 0
    parse_ts = datetime.fromisoformat
    now = time.time

    def handler(mine: dict[str, int], acks: list[int], acked: asyncio.Future[None]) -> Any:
        def on_text(payload: bytes) -> None:
            message = json.loads(payload)
            kind = message["type"]
            if kind == "asset_update":
                latencies.append((now() - parse_ts(message["timestamp"]).timestamp()) * 1000.0)
                symbol = message["data"]["symbol"]
                if symbol in mine:
                    mine[symbol] += 1
                total[0] += 1
            elif kind == "subscribed":
                acks[0] += 1
                if acks[0] == len(mine) and not acked.done():
                    acked.set_result(None)

        return on_text

    async def open_client(i: int) -> None:
        nonlocal failed
        mine_list = client_symbols(i, symbols, per_client)
        for attempt in range(5):
            mine = dict.fromkeys(mine_list, 0)
            acks = [0]
            acked: asyncio.Future[None] = loop.create_future()
            on_text = handler(mine, acks, acked)
            try:
                _, client = await asyncio.wait_for(
                    loop.create_connection(partial(RawClient, on_text), "127.0.0.1", port), 30
                )
                client.handshake(port, "/ws/realtime/", token)
                await asyncio.wait_for(client.opened, 30)
                for symbol in mine_list:
                    client.send_text(json.dumps({"type": "subscribe_asset", "data": {"symbol": symbol}}))
                await asyncio.wait_for(acked, 60)
                clients[i] = client
                counts[i] = mine
                return
            except (OSError, TimeoutError, ConnectionError):
                await asyncio.sleep(0.5 * (attempt + 1))
        failed += 1

    for start in range(0, len(indices), wave):
        await asyncio.gather(*(open_client(i) for i in indices[start : start + wave]))
    out.put(("ready", len(clients), failed))
    while not stop.is_set():
        received.value = total[0]
        await asyncio.sleep(0.2)
    received.value = total[0]
    for client in clients.values():
        client.transport.abort()
    closes: dict[int, int] = {}
    for client in clients.values():
        if client.close_code is not None:
            closes[client.close_code] = closes.get(client.close_code, 0) + 1
    out.put(("done", latencies, dict(counts), time.process_time(), closes))
