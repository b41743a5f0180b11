"""Fan-out: N WebSocket clients x 10 of 200 symbols, every symbol updated once a second.

Measures publish -> client receive latency (p50, p99, max), messages lost, server CPU and
memory per connection, for the push hub (consumers.RealtimeConsumer under Daphne, one layer
message per batch, local fan-out) against a bare Channels consumer (a layer group per symbol,
the Channels docs' way), each on the core and the pub/sub layer, in the same run.

Real processes: one Daphne, a publisher process (publish_batch per batch of 50 symbols, as
the price tasks do), and load-generator processes running `websockets` clients with token
auth. A scratch SQLite database under var/bench/ holds the bench user, token and assets.
Redis: REDIS_URL (its channel-layer and registry keys are deleted between runs), else the
embedded one.

    python -m bench.bench_fanout --clients 100,1000 --duration 20 --designs hub-core,bare-core
    make bench BENCH_ARGS=bench_fanout   (options from BENCH_FANOUT_ARGS)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
VAR = BASE_DIR / "var" / "bench"
SETTINGS = "config.settings.test"
BATCH_SIZE = 50  # REALTIME_BATCH_SIZE: the pipeline publishes per batch

DESIGNS: dict[str, tuple[str, str, str]] = {
    # name: (ASGI app, channel layer backend, publisher style)
    "hub-core": ("config.asgi:application", "channels_redis.core.RedisChannelLayer", "hub"),
    "hub-pubsub": ("config.asgi:application", "channels_redis.pubsub.RedisPubSubChannelLayer", "hub"),
    "bare-core": ("bench.bench_fanout:bare_application", "channels_redis.core.RedisChannelLayer", "bare"),
    "bare-pubsub": ("bench.bench_fanout:bare_application", "channels_redis.pubsub.RedisPubSubChannelLayer", "bare"),
}


def symbol_names(count: int) -> list[str]:
    return [f"B{i:03d}" for i in range(count)]


def client_symbols(index: int, symbols: list[str], per_client: int) -> list[str]:
    """Distinct symbols spread evenly: each symbol gets N * per_client / len(symbols) clients."""
    stride = len(symbols) // per_client
    return [symbols[(index + k * stride) % len(symbols)] for k in range(per_client)]


# --- the bare Channels consumer (the baseline) ---------------------------------------------
_bare_app: Any = None


def _build_bare_app() -> Any:
    import django

    django.setup()
    from channels.generic.websocket import AsyncWebsocketConsumer

    from backend.realtime.groups import asset_group

    class BareConsumer(AsyncWebsocketConsumer):
        """What the Channels tutorial does: join a layer group per subscription, forward."""

        async def connect(self) -> None:
            await self.accept()
            await self.send(text_data=json.dumps({"type": "connection", "data": {}}))

        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            message = json.loads(text_data or "{}")
            symbol = message["data"]["symbol"]
            await self.channel_layer.group_add(asset_group(symbol), self.channel_name)
            ack = {"type": "subscribed", "data": {"channel": "asset", "symbol": symbol}}
            await self.send(text_data=json.dumps(ack))

        async def asset_update(self, event: dict[str, Any]) -> None:
            out = {"type": "asset_update", "data": event["data"], "timestamp": event["timestamp"]}
            await self.send(text_data=json.dumps(out))

    return BareConsumer.as_asgi()


async def bare_application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _bare_app
    if scope["type"] == "lifespan":
        return
    if _bare_app is None:
        _bare_app = _build_bare_app()
    await _bare_app(scope, receive, send)


# --- processes ---------------------------------------------------------------------------
def _env(db: Path, layer: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=SETTINGS,
        DATABASE_URL=f"sqlite:///{db}",
        CHANNEL_LAYER_BACKEND=layer,
        WEBSOCKET_MAX_CONNECTIONS_PER_USER="1000000",
        CHANNEL_LAYER_MAX_CONNECTIONS="20000",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def prepare_database(db: Path, symbols: list[str]) -> str:
    VAR.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    env = _env(db, DESIGNS["hub-core"][1])
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
    script = (
        "from django.contrib.auth.models import User\n"
        "from rest_framework.authtoken.models import Token\n"
        "from backend.market.models import Asset\n"
        "u = User.objects.create_user('bench')\n"
        f"Asset.objects.bulk_create([Asset(symbol=s, tracking_status='tracked') for s in {symbols!r}])\n"
        "print(Token.objects.create(user=u).key)\n"
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=BASE_DIR,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def clean_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for pattern in ("tf-asgi*", "asgi*", "tf:ws:*"):
        keys = list(client.scan_iter(pattern, count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


def warm_up(port: int, token: str) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /ws/realtime/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Authorization: Token {token}\r\n\r\n"
            ).encode()
        )
        data = b""
        while data.count(b"connection") < 1:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- the publisher -----------------------------------------------------------------------
def publisher_main(
    db: str, layer: str, style: str, symbols: list[str], duration: float, batch_size: int, out: Any
) -> None:
    os.environ.update(_env(Path(db), layer))
    import django

    django.setup()
    from decimal import Decimal

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from backend.realtime.events import asset_event
    from backend.realtime.groups import asset_group
    from backend.realtime.publish import publish_batch

    def payload(symbol: str, tick: int) -> Any:
        return {
            "symbol": symbol,
            "price": Decimal(100 + tick) + Decimal("0.123456"),
            "change": Decimal("1.25"),
            "change_percent": Decimal("0.81"),
            "volume": 1_000_000 + tick,
            "high": Decimal("101.5"),
            "low": Decimal("98.25"),
            "market_cap": 2_400_000_000_000,
            "previous_close": Decimal("99.0"),
            "last_updated": datetime.now().isoformat(),
            "source": "simulated",
        }

    async def bare_send(events: list[Any]) -> None:
        layer_ = get_channel_layer()
        for event in events:
            await layer_.group_send(
                asset_group(event["data"]["symbol"]),
                {"type": "asset.update", "data": event["data"], "timestamp": event["timestamp"]},
            )
        loop_layer = getattr(layer_, "_layers", {}).pop(asyncio.get_running_loop(), None)
        if loop_layer is not None:
            await loop_layer.flush()

    def send(events: list[Any]) -> None:
        if style == "hub":
            publish_batch(events)
        else:
            async_to_sync(bare_send)(events)

    # Warm up (imports, first connection) on a symbol nobody subscribes to.
    send([asset_event(payload("WARMUP", 0))])
    batches = [symbols[i : i + batch_size] for i in range(0, len(symbols), batch_size)]
    slot = 1.0 / len(batches)
    counts = dict.fromkeys(symbols, 0)
    late = 0
    start = time.monotonic()
    for tick in range(int(duration)):
        for b, batch in enumerate(batches):
            due = start + tick + b * slot
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                late += 1
            send([asset_event(payload(s, tick)) for s in batch])
            for s in batch:
                counts[s] += 1
    out.put({"counts": counts, "late_batches": late, "seconds": time.monotonic() - start})


# --- the load generator ------------------------------------------------------------------
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


# --- one run -----------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_one(design: str, clients: int, args: argparse.Namespace, db: Path, token: str) -> dict[str, Any]:
    app, layer, style = DESIGNS[design]
    symbols = symbol_names(args.symbols)
    clean_redis(os.environ["REDIS_URL"])
    port = free_port()
    env = _env(db, layer)
    log = (VAR / f"daphne-{design}-{clients}.log").open("wb")
    # BENCH_PROFILE=1 writes a cProfile of the Daphne process next to its log;
    # BENCH_DAPHNE_ARGS adds Daphne options (e.g. "--ping-interval 300").
    profile = (
        ["-m", "cProfile", "-o", str(VAR / f"daphne-{design}-{clients}.prof")]
        if os.environ.get("BENCH_PROFILE")
        else []
    )
    daphne = subprocess.Popen(
        [
            sys.executable,
            *profile,
            "-m",
            "daphne",
            *shlex.split(os.environ.get("BENCH_DAPHNE_ARGS", "")),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            app,
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    ctx = mp.get_context("spawn")
    procs: list[Any] = []
    try:
        wait_port(port)
        warm_up(port, token)  # the bare app sets Django up on its first connection
        time.sleep(1.0)
        rss_idle = proc_rss_kb(daphne.pid)
        out = ctx.Queue()
        stop = ctx.Event()
        shares = [list(range(k, clients, args.loadgen_procs)) for k in range(args.loadgen_procs)]
        counters = [ctx.Value("q", 0) for _ in shares]
        wave = max(1, args.wave // args.loadgen_procs)
        connect_started = time.monotonic()
        for share, counter in zip(shares, counters, strict=True):
            proc = ctx.Process(
                target=loadgen_main,
                args=(port, token, share, symbols, args.per_client, wave, stop, counter, out),
            )
            proc.start()
            procs.append(proc)
        connected = failed = 0
        for _ in procs:
            _, ok, bad = out.get(timeout=600)
            connected += ok
            failed += bad
        connect_seconds = time.monotonic() - connect_started
        time.sleep(1.0)
        rss_connected = proc_rss_kb(daphne.pid)
        pub_out = ctx.Queue()
        publisher = ctx.Process(
            target=publisher_main, args=(str(db), layer, style, symbols, args.duration, args.batch_size, pub_out)
        )
        cpu0, wall0 = proc_cpu_seconds(daphne.pid), time.monotonic()
        publisher.start()
        published = pub_out.get(timeout=args.duration + 300)
        publisher.join(30)
        cpu1, wall1 = proc_cpu_seconds(daphne.pid), time.monotonic()
        counts: dict[str, int] = published["counts"]
        expected = sum(
            counts[s]
            for k, share in enumerate(shares)
            for i in share
            for s in client_symbols(i, symbols, args.per_client)
        )
        # Drain: until everything arrived, or nothing more arrives for 3 s, or --drain passes.
        last_total, last_change, drain_start = -1, time.monotonic(), time.monotonic()
        while time.monotonic() - drain_start < args.drain:
            total = sum(c.value for c in counters)
            if total >= expected:
                break
            if total != last_total:
                last_total, last_change = total, time.monotonic()
            elif time.monotonic() - last_change > 3:
                break
            time.sleep(0.2)
        rss_end = proc_rss_kb(daphne.pid)
        stop.set()
        latencies: list[float] = []
        lost = 0
        loadgen_cpu = 0.0
        closed_by_server: dict[int, int] = {}
        for _ in procs:
            _kind, lats, per_client, cpu, closes = out.get(timeout=120)
            loadgen_cpu += cpu
            for code, n in closes.items():
                closed_by_server[code] = closed_by_server.get(code, 0) + n
            latencies.extend(lats)
            for client_counts in per_client.values():
                lost += sum(max(0, counts[s] - n) for s, n in client_counts.items())
        # Clients that never connected lose everything they would have received.
        connected_ids = connected
        missing_clients = clients - connected_ids
        for proc in procs:
            proc.join(30)
        return {
            "design": design,
            "clients": clients,
            "connected": connected,
            "connect_s": connect_seconds,
            "expected": expected,
            "received": len(latencies),
            "lost": lost,
            "missing_clients": missing_clients,
            "p50": percentile(latencies, 0.50),
            "p99": percentile(latencies, 0.99),
            "max": max(latencies) if latencies else float("nan"),
            "cpu_pct": 100.0 * (cpu1 - cpu0) / (wall1 - wall0),
            "kb_per_conn": (rss_connected - rss_idle) / max(1, connected),
            "rss_mb_end": rss_end / 1024,
            "late_batches": published["late_batches"],
            "loadgen_cpu_s": loadgen_cpu,
            "closed_by_server": closed_by_server,
        }
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        daphne.send_signal(signal.SIGTERM)
        try:
            daphne.wait(20)
        except subprocess.TimeoutExpired:
            daphne.kill()
        log.close()


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'design':<12} {'N':>5} {'conn':>5} {'conn s':>6} {'expected':>9} {'lost':>7} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'p99/hub':>7} {'CPU %':>6} {'KB/conn':>7} {'RSS MB':>7} {'late':>4}"
    )
    print(head)
    print("-" * len(head))
    hub_p99 = {r["clients"]: r["p99"] for r in rows if r["design"].startswith("hub-core")}
    for r in rows:
        ratio = r["p99"] / hub_p99[r["clients"]] if hub_p99.get(r["clients"]) else float("nan")
        print(
            f"{r['design']:<12} {r['clients']:>5} {r['connected']:>5} {r['connect_s']:>6.1f} {r['expected']:>9} "
            f"{r['lost']:>7} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['max']:>8.1f} {ratio:>7.1f} "
            f"{r['cpu_pct']:>6.0f} {r['kb_per_conn']:>7.1f} {r['rss_mb_end']:>7.1f} {r['late_batches']:>4}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", default="100,1000,3000", help="comma list of client counts")
    parser.add_argument("--duration", type=float, default=20, help="seconds of publishing")
    parser.add_argument("--designs", default="hub-core,bare-core", help=f"comma list of {', '.join(DESIGNS)}")
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument(
        "--batch-size", type=int, default=BATCH_SIZE, help="symbols per publish_batch, spread evenly over each second"
    )
    parser.add_argument("--loadgen-procs", type=int, default=2)
    parser.add_argument("--wave", type=int, default=40, help="concurrent handshakes (Daphne's backlog is 50)")
    parser.add_argument("--drain", type=float, default=30, help="max seconds to wait for stragglers")
    args = parser.parse_args(argv if argv is not None else shlex.split(os.environ.get("BENCH_FANOUT_ARGS", "")))

    sys.path.insert(0, str(BASE_DIR))
    if not os.environ.get("REDIS_URL"):
        from config.embedded import ensure_redis_url

        ensure_redis_url()
    db = VAR / "fanout.sqlite3"
    token = prepare_database(db, symbol_names(args.symbols))
    rows = []
    for clients in (int(c) for c in args.clients.split(",")):
        for design in args.designs.split(","):
            row = run_one(design, clients, args, db, token)
            rows.append(row)
            print(
                f"  {design} N={clients}: p99 {row['p99']:.0f} ms, lost {row['lost']}, CPU {row['cpu_pct']:.0f} %, "
                f"load generator CPU {row['loadgen_cpu_s']:.1f} s, closed by server {row['closed_by_server']}",
                flush=True,
            )
    print_table(rows)


if __name__ == "__main__":
    main(sys.argv[1:])
