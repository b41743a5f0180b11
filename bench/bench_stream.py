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
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench.fanout.designs import DESIGNS, client_symbols
from bench.fanout.loadgen import RawClient
from bench.fanout.processes import BASE_DIR, VAR, bench_env, clean_redis, prepare_database, proc_cpu_seconds, warm_up
from bench.fanout.report import percentile

LAYER = DESIGNS["hub-core"][1]
FRAME_EVERY = 0.02  # seconds between two provider frames


def symbol_names(count: int) -> list[str]:
    return [f"S{i:03d}" for i in range(count)]


# --- load generator (a spawned process) ------------------------------------------------------
def loadgen_main(
    port: int,
    token: str,
    indices: list[int],
    symbols: list[str],
    per_client: int,
    phase: Any,
    out: Any,
    expected_in: Any,
) -> None:
    asyncio.run(_loadgen(port, token, indices, symbols, per_client, phase, out, expected_in))


async def _loadgen(
    port: int,
    token: str,
    indices: list[int],
    symbols: list[str],
    per_client: int,
    phase: Any,
    out: Any,
    expected_in: Any,
) -> None:
    loop = asyncio.get_running_loop()
    latencies: dict[int, list[float]] = {}
    got: dict[int, dict[int, dict[str, set[float]]]] = {}  # phase -> client -> symbol -> prices
    clients: dict[int, RawClient] = {}
    parse_ts, now = datetime.fromisoformat, time.time

    def on_text(i: int, acked: asyncio.Future[None], wanted: int, payload: bytes) -> None:
        message = json.loads(payload)
        if message["type"] == "asset_update":
            p, data = phase.value, message["data"]
            latencies.setdefault(p, []).append((now() - parse_ts(data["last_updated"]).timestamp()) * 1000.0)
            got.setdefault(p, {}).setdefault(i, {}).setdefault(data["symbol"], set()).add(round(data["price"], 6))
        elif message["type"] == "subscribed":
            acks[i] += 1
            if acks[i] == wanted and not acked.done():
                acked.set_result(None)

    acks = dict.fromkeys(indices, 0)

    async def open_client(i: int) -> None:
        mine = client_symbols(i, symbols, per_client)
        for attempt in range(5):
            acks[i] = 0
            acked: asyncio.Future[None] = loop.create_future()
            try:
                factory = partial(RawClient, partial(on_text, i, acked, len(mine)))
                _, client = await asyncio.wait_for(loop.create_connection(factory, "127.0.0.1", port), 30)
                client.handshake(port, "/ws/realtime/", token)
                await asyncio.wait_for(client.opened, 30)
                for symbol in mine:
                    client.send_text(json.dumps({"type": "subscribe_asset", "data": {"symbol": symbol}}))
                await asyncio.wait_for(acked, 60)
                clients[i] = client
                return
            except (OSError, TimeoutError, ConnectionError):
                await asyncio.sleep(0.5 * (attempt + 1))

    for start in range(0, len(indices), 20):
        await asyncio.gather(*(open_client(i) for i in indices[start : start + 20]))
    out.put(("ready", len(clients)))
    # The clients keep reading until the main process sends what every phase flushed.
    expected: dict[int, dict[str, set[float]]] = await asyncio.to_thread(expected_in.get)
    lost = {p: 0 for p in expected}
    for p, flushed in expected.items():
        for i in clients:
            received = got.get(p, {}).get(i, {})
            lost[p] += sum(
                len(flushed.get(s, set()) - received.get(s, set())) for s in client_symbols(i, symbols, per_client)
            )
    for client in clients.values():
        client.transport.abort()
    out.put(("done", latencies, lost, time.process_time()))


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
            t = int(time.time() * 1000)
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
    ctx = mp.get_context("spawn")
    phase, out = ctx.Value("i", -1), ctx.Queue()
    expected_qs = [ctx.Queue() for _ in range(args.loadgen_procs)]
    procs: list[Any] = []
    rows: list[dict[str, Any]] = []
    expected: dict[int, dict[str, set[float]]] = {}
    try:
        wait_for_port(port)
        warm_up(port, token)
        for k, q in enumerate(expected_qs):
            share = list(range(k, args.clients, args.loadgen_procs))
            proc = ctx.Process(target=loadgen_main, args=(port, token, share, symbols, args.per_client, phase, out, q))
            proc.start()
            procs.append(proc)
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
                }
            )
            phase.value = -1
        for q in expected_qs:
            q.put(expected)
        latencies: dict[int, list[float]] = {}
        lost: dict[int, int] = {}
        for _ in procs:
            _kind, lats, lost_by_phase, _cpu = out.get(timeout=300)
            for p, values in lats.items():
                latencies.setdefault(p, []).extend(values)
            for p, n in lost_by_phase.items():
                lost[p] = lost.get(p, 0) + n
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.terminate()
        daphne.send_signal(signal.SIGTERM)
        daphne.wait(20)
        fake.close()
        for log in logs.values():
            log.close()
    head = f"{'flush ms':>8} {'trades':>7} {'flushed':>8} {'received':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'lost':>5} {'Daphne %':>8} {'stream %':>8}"
    print(head)
    print("-" * len(head))
    for p, row in enumerate(rows):
        lats = latencies.get(p, [])
        print(
            f"{row['flush_ms']:>8} {row['trades']:>7} {row['flushed']:>8} {len(lats):>9} {percentile(lats, 0.5):>7.1f} "
            f"{percentile(lats, 0.99):>7.1f} {max(lats, default=float('nan')):>7.1f} {lost.get(p, 0):>5} "
            f"{row['daphne_cpu']:>8.0f} {row['stream_cpu']:>8.0f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
