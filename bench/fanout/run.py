"""One measured fan-out run: start Daphne for a design, connect the clients, publish for the
duration, drain, and collect latency, losses, CPU and memory into one result row."""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.fanout.designs import DESIGNS, client_symbols, symbol_names
from bench.fanout.loadgen import loadgen_main
from bench.fanout.processes import (
    BASE_DIR,
    VAR,
    bench_env,
    clean_redis,
    proc_cpu_seconds,
    proc_rss_kb,
    server_pids,
    stop_server,
    warm_up,
)
from bench.fanout.publisher import publisher_main
from bench.fanout.report import percentile
from tests.live import free_port
from tests.live import wait_for_port as wait_port


def run_one(design: str, clients: int, args: argparse.Namespace, db: Path, token: str) -> dict[str, Any]:
    app, layer, style = DESIGNS[design]
    symbols = symbol_names(args.symbols)
    clean_redis(os.environ["REDIS_URL"])
    port = free_port()
    env = bench_env(db, layer)
    log = (VAR / f"daphne-{design}-{clients}.log").open("wb")
    # BENCH_PROFILE=1 writes a cProfile of the Daphne process next to its log;
    # BENCH_DAPHNE_ARGS adds Daphne options (e.g. "--ping-interval 300").
    profile = (
        ["-m", "cProfile", "-o", str(VAR / f"daphne-{design}-{clients}.prof")]
        if os.environ.get("BENCH_PROFILE")
        else []
    )
    # --processes N (WEB_CONCURRENCY): the web runner's N Daphne children on one port
    # (config/web.py); figures are summed over the children.
    server = [sys.executable, *profile, "-m", "daphne", *shlex.split(os.environ.get("BENCH_DAPHNE_ARGS", ""))]
    if getattr(args, "processes", 1) > 1:
        server = [sys.executable, "-m", "config.web", "--processes", str(args.processes)]
    daphne = subprocess.Popen(
        [*server, "--bind", "127.0.0.1", "--port", str(port), app],
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
        servers = server_pids(daphne.pid, getattr(args, "processes", 1))
        for _ in servers:  # every child's hub started, as the first client of each does
            warm_up(port, token)
        time.sleep(1.0)
        rss_idle = sum(proc_rss_kb(p) for p in servers)
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
        rss_connected = sum(proc_rss_kb(p) for p in servers)
        pub_out = ctx.Queue()
        publisher = ctx.Process(
            target=publisher_main, args=(str(db), layer, style, symbols, args.duration, args.batch_size, pub_out)
        )
        cpu0, wall0 = sum(proc_cpu_seconds(p) for p in servers), time.monotonic()
        publisher.start()
        published = pub_out.get(timeout=args.duration + 300)
        publisher.join(30)
        cpu1, wall1 = sum(proc_cpu_seconds(p) for p in servers), time.monotonic()
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
        rss_end = sum(proc_rss_kb(p) for p in servers)
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
        stop_server(daphne, timeout=20)
        log.close()
