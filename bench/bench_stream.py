"""Streaming: a trade sent by the provider -> `asset_update` in the client, 500 clients x 10 of 50 streamed symbols.

Real processes on one machine: the fake provider (tests/fakes/stream.py, a thread of this
process) trades each of 50 symbols 5 times a second, in one frame every 20 ms; the real
`manage.py run_stream` follows them and flushes every --flush-ms (one phase per value, the
process restarted between phases, the clients kept); one Daphne; 500 clients (the fan-out
bench's raw RFC 6455 client, 2 load-generator processes), each subscribed to 10 symbols.
Latency = client receive time - the trade's time `t` (the `last_updated` it carries).
A flush lost = a (client, symbol, flushed price) the client never received; the flushed
prices are the stream's history rows. A scratch SQLite database under var/bench/; Redis:
REDIS_URL, else the embedded one.

    python -m bench.bench_stream --clients 500 --flush-ms 100,250 --duration 20
    make bench BENCH_ARGS=bench_stream   (options from BENCH_STREAM_ARGS)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench.fanout.designs import DESIGNS, client_symbols
from bench.fanout.loadgen import RawClient
from bench.fanout.processes import BASE_DIR, VAR, bench_env, clean_redis, prepare_database, proc_cpu_seconds, warm_up
from bench.fanout.report import percentile

LAYER = DESIGNS["hub-core"][1]
STAGE_KEY = "tf:metrics:stage:{stage}"  # backend/core/metrics.py
FLUSH_STAGES = ("commit", "alerts", "publish", "end_to_end")
FRAME_EVERY = 0.02  # seconds between two provider frames


def symbol_names(count: int) -> list[str]:
    return [f"S{i:03d}" for i in range(count)]


# --- load generator (a spawned process; bench_alerts uses it too) -------------------------------
@dataclass(frozen=True)
class Clients:
    """What one load-generator process runs: its clients (by index), each client's token
    (tokens[i % len(tokens)]), the symbols each subscribes to, and which frames it records
    (those whose text contains `marker`)."""

    port: int
    tokens: list[str]
    indices: list[int]
    symbols: list[str]
    per_client: int
    marker: bytes = b'"asset_update"'


# (phase, client, receive time, frame) of every recorded frame, and the clients connected.
Received = list[tuple[int, int, float, bytes]]
Summarise = Callable[[Received, list[int], Any, "Clients"], Any]


def loadgen_main(spec: Clients, phase: Any, out: Any, expected_in: Any, summarise: Summarise) -> None:
    """Connect the clients, say ("ready", connected), record frames until the main process
    sends what it expects, then put ("done", summarise(received, clients, expected, spec))."""
    asyncio.run(_loadgen(spec, phase, out, expected_in, summarise))


class StampedClient(RawClient):
    """RawClient that notes when each chunk of bytes reached this process: the receive time
    of the frames in it. The frames are parsed later, not while the next sockets wait: 250
    clients share one load-generator process, and parsing ~2,500 frames a flush inline put
    up to ~40 ms of the generator's own work on the last clients' figures."""

    def __init__(self, on_text: Any, arrived: list[float]) -> None:
        super().__init__(on_text)
        self.arrived = arrived

    def data_received(self, data: bytes) -> None:
        self.arrived[0] = time.time()
        super().data_received(data)


async def _loadgen(spec: Clients, phase: Any, out: Any, expected_in: Any, summarise: Summarise) -> None:
    loop = asyncio.get_running_loop()
    raw: Received = []
    clients: dict[int, RawClient] = {}
    arrived = [0.0]
    acks = dict.fromkeys(spec.indices, 0)

    def on_text(i: int, acked: asyncio.Future[None], wanted: int, payload: bytes) -> None:
        if spec.marker in payload:
            raw.append((phase.value, i, arrived[0], payload))
        elif b'"subscribed"' in payload and json.loads(payload)["type"] == "subscribed":
            acks[i] += 1
            if acks[i] == wanted and not acked.done():
                acked.set_result(None)

    async def open_client(i: int) -> None:
        mine = client_symbols(i, spec.symbols, spec.per_client)
        for attempt in range(5):
            acks[i] = 0
            acked: asyncio.Future[None] = loop.create_future()
            try:
                factory = partial(StampedClient, partial(on_text, i, acked, len(mine)), arrived)
                _, client = await asyncio.wait_for(loop.create_connection(factory, "127.0.0.1", spec.port), 30)
                client.handshake(spec.port, "/ws/realtime/", spec.tokens[i % len(spec.tokens)])
                await asyncio.wait_for(client.opened, 30)
                for symbol in mine:
                    client.send_text(json.dumps({"type": "subscribe_asset", "data": {"symbol": symbol}}))
                await asyncio.wait_for(acked, 60)
                clients[i] = client
                return
            except (OSError, TimeoutError, ConnectionError):
                await asyncio.sleep(0.5 * (attempt + 1))

    for start in range(0, len(spec.indices), 20):
        await asyncio.gather(*(open_client(i) for i in spec.indices[start : start + 20]))
    out.put(("ready", len(clients)))
    # The clients keep reading until the main process sends what it expects.
    expected = await asyncio.to_thread(expected_in.get)
    for client in clients.values():
        client.transport.abort()
    out.put(("done", summarise(raw, list(clients), expected, spec)))


def updates_summarise(raw: Received, clients: list[int], expected: Any, spec: Clients) -> Any:
    """Per phase: each update's latency (total, trade -> event, event -> client) and the
    flushed prices (expected: phase -> symbol -> prices) a client never received."""
    latencies: dict[int, dict[str, list[float]]] = {}
    got: dict[int, dict[int, dict[str, set[float]]]] = {}  # phase -> client -> symbol -> prices
    parse_ts = datetime.fromisoformat
    for p, i, at, payload in raw:
        if p < 0:
            continue
        message = json.loads(payload)
        data = message["data"]
        traded = parse_ts(data["last_updated"]).timestamp()
        built = parse_ts(message["timestamp"]).timestamp()
        lat = latencies.setdefault(p, {"total": [], "to_event": [], "event_to_client": []})
        lat["total"].append((at - traded) * 1000.0)
        lat["to_event"].append((built - traded) * 1000.0)
        lat["event_to_client"].append((at - built) * 1000.0)
        got.setdefault(p, {}).setdefault(i, {}).setdefault(data["symbol"], set()).add(round(data["price"], 6))
    lost = {p: 0 for p in expected}
    for p, flushed in expected.items():
        for i in clients:
            received = got.get(p, {}).get(i, {})
            mine = client_symbols(i, spec.symbols, spec.per_client)
            lost[p] += sum(len(flushed.get(s, set()) - received.get(s, set())) for s in mine)
    return latencies, lost


def loadgens_start(
    specs: list[Clients], summarise: Summarise, phase: Any = None
) -> tuple[list[Any], Any, list[Any], Any]:
    """Spawn one load-generator process per spec; returns them, their out queue, the
    queues that end them, and the shared phase number."""
    ctx = mp.get_context("spawn")
    phase = phase if phase is not None else ctx.Value("i", -1)
    out = ctx.Queue()
    ends = [ctx.Queue() for _ in specs]
    procs = [
        ctx.Process(target=loadgen_main, args=(spec, phase, out, end, summarise))
        for spec, end in zip(specs, ends, strict=True)
    ]
    for proc in procs:
        proc.start()
    return procs, out, ends, phase


def processes_end(loadgens: list[Any], daphne: subprocess.Popen[bytes]) -> None:
    """The load generators (once they reported) and Daphne, stopped."""
    for proc in loadgens:
        proc.join(30)
        if proc.is_alive():
            proc.terminate()
    daphne.send_signal(signal.SIGTERM)
    daphne.wait(20)


# --- the provider's trades -------------------------------------------------------------------
def trade_forever(fake: Any, symbols: list[str], rate: float, stop: threading.Event, sent: list[int]) -> None:
    """Each symbol trades `rate` times a second, spread evenly; one frame every FRAME_EVERY."""
    period = 1.0 / rate
    next_at = {s: time.monotonic() + period * k / len(symbols) for k, s in enumerate(symbols)}
    counts = dict.fromkeys(symbols, 0)
    while not stop.is_set():
        now = time.monotonic()
        due = [s for s, at in next_at.items() if at <= now]
        if due:
            t = round(time.time() * 1000)  # the send time to the ms (truncating made trades look older)
            entries = []
            for s in due:
                counts[s] += 1
                entries.append({"s": s, "p": round(100 + counts[s] * 0.01, 2), "t": t, "v": 100, "c": ["1"]})
                next_at[s] += period
            fake.trades(entries)
            sent[0] += len(entries)
        time.sleep(max(0.0, FRAME_EVERY - (time.monotonic() - now)))


def flushed_prices(db: Path, since_ms: int) -> dict[str, set[float]]:
    import sqlite3

    rows = sqlite3.connect(db).execute(
        "SELECT a.symbol, h.price FROM market_pricehistory h JOIN market_asset a ON a.id = h.asset_id "
        "WHERE h.source = 'finnhub_ws' AND h.quoted_at >= ?",
        (datetime.fromtimestamp(since_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S"),),  # Django stores UTC
    )
    out: dict[str, set[float]] = {}
    for symbol, price in rows:
        out.setdefault(symbol, set()).add(round(float(price), 6))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument("--rate", type=float, default=5, help="trades a second per symbol")
    parser.add_argument("--flush-ms", default="100,250", help="comma list: one phase each")
    parser.add_argument("--duration", type=float, default=20, help="seconds of trading per phase")
    parser.add_argument("--loadgen-procs", type=int, default=2)
    args = parser.parse_args(argv if argv is not None else shlex.split(os.environ.get("BENCH_STREAM_ARGS", "")))

    sys.path.insert(0, str(BASE_DIR))
    if not os.environ.get("REDIS_URL"):
        from config.embedded import ensure_redis_url

        ensure_redis_url()
    from tests.fakes.stream import FakeStream
    from tests.live import free_port, wait_for_port

    symbols = symbol_names(args.symbols)
    db = VAR / "stream.sqlite3"
    token = prepare_database(db, symbols)
    clean_redis(os.environ["REDIS_URL"])
    env = bench_env(db, LAYER)
    fake = FakeStream().start()
    port = free_port()
    logs = {name: (VAR / f"stream-{name}.log").open("wb") for name in ("daphne", "stream")}
    daphne = subprocess.Popen(
        [sys.executable, "-m", "daphne", "--bind", "127.0.0.1", "--port", str(port), "config.asgi:application"],
        cwd=BASE_DIR,
        env=env,
        stdout=logs["daphne"],
        stderr=subprocess.STDOUT,
    )
    procs: list[Any] = []
    rows: list[dict[str, Any]] = []
    expected: dict[int, dict[str, set[float]]] = {}
    try:
        wait_for_port(port)
        warm_up(port, token)
        specs = [
            Clients(port, [token], list(range(k, args.clients, args.loadgen_procs)), symbols, args.per_client)
            for k in range(args.loadgen_procs)
        ]
        procs, out, expected_qs, phase = loadgens_start(specs, updates_summarise)
        connected = sum(out.get(timeout=900)[1] for _ in procs)
        print(f"  {connected} of {args.clients} clients connected", flush=True)
        for p, flush_ms in enumerate(int(f) for f in args.flush_ms.split(",")):
            stream_env = {
                **env,
                "MARKET_STREAM_SOURCE": "finnhub",
                "FINNHUB_WS_URL": fake.url,
                "FINNHUB_API_KEY": "bench",
                "MARKET_STREAM_FLUSH_MS": str(flush_ms),
                "LOG_LEVEL": "INFO",
            }
            stream = subprocess.Popen(
                [sys.executable, "manage.py", "run_stream"],
                cwd=BASE_DIR,
                env=stream_env,
                stdout=logs["stream"],
                stderr=subprocess.STDOUT,
            )
            fake.wait_for(lambda: len(fake.subscriptions) == len(symbols), timeout=60, what="every symbol followed")
            time.sleep(1.0)
            stages_reset(os.environ["REDIS_URL"])
            phase.value = p
            started_ms = int(time.time() * 1000)
            cpu0 = (proc_cpu_seconds(daphne.pid), proc_cpu_seconds(stream.pid), time.monotonic())
            halt, sent = threading.Event(), [0]
            trader = threading.Thread(target=trade_forever, args=(fake, symbols, args.rate, halt, sent))
            trader.start()
            time.sleep(args.duration)
            halt.set()
            trader.join()
            time.sleep(3.0)  # the last flush reaches the clients
            cpu1 = (proc_cpu_seconds(daphne.pid), proc_cpu_seconds(stream.pid), time.monotonic())
            stages = stages_read(os.environ["REDIS_URL"])
            stream.send_signal(signal.SIGTERM)
            stream.wait(30)
            expected[p] = flushed_prices(db, started_ms - 1000)
            wall = cpu1[2] - cpu0[2]
            rows.append(
                {
                    "flush_ms": flush_ms,
                    "trades": sent[0],
                    "flushed": sum(len(v) for v in expected[p].values()),
                    "daphne_cpu": 100 * (cpu1[0] - cpu0[0]) / wall,
                    "stream_cpu": 100 * (cpu1[1] - cpu0[1]) / wall,
                    "stages": stages,
                }
            )
            phase.value = -1
        for q in expected_qs:
            q.put(expected)
        latencies: dict[int, dict[str, list[float]]] = {}
        lost: dict[int, int] = {}
        for _ in procs:
            _kind, (lats, lost_by_phase) = out.get(timeout=300)
            for p, parts in lats.items():
                for part, values in parts.items():
                    latencies.setdefault(p, {}).setdefault(part, []).extend(values)
            for p, n in lost_by_phase.items():
                lost[p] = lost.get(p, 0) + n
    finally:
        processes_end(procs, daphne)
        fake.close()
        for log in logs.values():
            log.close()
    report(rows, latencies, lost)


def stages_reset(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.delete(*(STAGE_KEY.format(stage=stage) for stage in FLUSH_STAGES))
    client.close()


def stages_read(url: str) -> dict[str, list[float]]:
    """The stream process's per-flush stage times (seconds) recorded during the phase, and
    what its state says a whole flush took (store, hand-on, both: p50 and p99, ms)."""
    import redis

    client = redis.Redis.from_url(url, decode_responses=True)
    out = {stage: [float(v) for v in client.lrange(STAGE_KEY.format(stage=stage), 0, -1)] for stage in FLUSH_STAGES}
    state = client.hgetall("tf:stream:state")  # backend/market/services/stream/state.py
    out["runner"] = [
        float(state.get(f"{part}_{q}_ms") or "nan") for part in ("store", "hand_on", "flush") for q in ("p50", "p99")
    ]
    client.close()
    return out


def report(rows: list[dict[str, Any]], latencies: dict[int, dict[str, list[float]]], lost: dict[int, int]) -> None:
    head = (
        f"{'flush ms':>8} {'trades':>7} {'flushed':>8} {'received':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'lost':>5} {'Daphne %':>8} {'stream %':>8}"
    )
    print(head)
    print("-" * len(head))
    for p, row in enumerate(rows):
        lats = latencies.get(p, {}).get("total", [])
        print(
            f"{row['flush_ms']:>8} {row['trades']:>7} {row['flushed']:>8} {len(lats):>9} {percentile(lats, 0.5):>7.1f} "
            f"{percentile(lats, 0.99):>7.1f} {max(lats, default=float('nan')):>7.1f} {lost.get(p, 0):>5} "
            f"{row['daphne_cpu']:>8.0f} {row['stream_cpu']:>8.0f}"
        )
    print("\nwhere the time goes, p50 / p90 / p99 ms (trade -> event: the window and the store; event -> client:")
    print("alerts, publish, Redis, Daphne's fan-out, the client; the stream's stages per flush):")
    for p, row in enumerate(rows):
        parts = {name: latencies.get(p, {}).get(name, []) for name in ("to_event", "event_to_client")}
        parts.update({f"flush {k}": [v * 1000 for v in vs] for k, vs in row["stages"].items() if k != "runner"})
        shown = ", ".join(
            f"{name} {percentile(vs, 0.5):.1f} / {percentile(vs, 0.9):.1f} / {percentile(vs, 0.99):.1f}"
            for name, vs in parts.items()
        )
        print(f"  {row['flush_ms']} ms: {shown}")
        store50, store99, hand50, hand99, flush50, flush99 = row["stages"]["runner"]
        print(
            f"  {row['flush_ms']} ms, the runner's own timing (last 500 flushes): store {store50:.1f} / {store99:.1f}, "
            f"hand-on (alert check, publish) {hand50:.1f} / {hand99:.1f}, whole flush {flush50:.1f} / {flush99:.1f} (p50 / p99 ms)"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
