"""Connection storm: N clients connect at once, each subscribing to 10 symbols and a portfolio.

Measures the time until every client holds all its snapshots (10 `asset_update`, one
`portfolio_update`), the clients' failed attempts and the close codes they saw (1011: the
server failed them). With --restart the web process is then stopped and started again and
the clients come back as the JS client does (jittered backoff, clients/js): the figure is the
time from the stop (or the SIGHUP of a reload) until every client holds fresh snapshots again.

Real processes: the web server (`python -m config.web`, WEB_CONCURRENCY=--processes, or a
plain Daphne with --server daphne, as before config/web.py existed), load-generator processes
with raw WebSocket clients and token auth. Data: BENCH_DATABASE_URL (e.g. a PostgreSQL
database of your own), else a scratch SQLite database under var/bench/. Redis: REDIS_URL
(the registry, layer and quote-cache keys are deleted first, so every answer starts cold),
else the embedded one.

    python -m bench bench_storm                      (options from BENCH_STORM_ARGS)
    python -m bench.bench_storm --clients 3000 --processes 1 --restart reload
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Any

from bench.fanout.designs import symbol_names
from bench.fanout.processes import BASE_DIR, VAR, bench_env, clean_redis, raise_fd_limit, stop_server, warm_up
from bench.fanout.report import percentile
from bench.fanout.storm import prepare_storm_database, storm_main
from tests.live import free_port
from tests.live import wait_for_port as wait_port

LAYER = "channels_redis.core.RedisChannelLayer"


def server_argv(server: str, port: int, processes: int) -> list[str]:
    if server == "daphne":
        # BENCH_PROFILE=1: a cProfile of the Daphne process next to its log.
        profile = ["-m", "cProfile", "-o", str(VAR / "storm-daphne.prof")] if os.environ.get("BENCH_PROFILE") else []
        return [
            sys.executable,
            *profile,
            "-m",
            "daphne",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "config.asgi:application",
        ]
    return [
        sys.executable,
        *("-m", "config.web", "--bind", "127.0.0.1", "--port", str(port)),
        *("--processes", str(processes), "config.asgi:application"),
    ]


def start_server(argv: list[str], env: dict[str, str], log: Any, port: int, token: str) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(argv, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_port(port, timeout=60)
    return server


def clean_quote_cache(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter("tf:*:quote:*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i : i + 500])
    client.close()


def summary(label: str, seconds: list[float], failures: int, codes: list[int]) -> str:
    by_code: dict[int, int] = {}
    for code in codes:
        by_code[code] = by_code.get(code, 0) + 1
    return (
        f"  {label}: {len(seconds)} clients; all holding snapshots after {max(seconds):.1f} s "
        f"(p50 {percentile(seconds, 0.5):.1f} s, p99 {percentile(seconds, 0.99):.1f} s); "
        f"failed attempts {failures}; close codes seen {by_code or 'none'}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=3000)
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument("--processes", type=int, default=1, help="WEB_CONCURRENCY")
    parser.add_argument("--server", choices=("web", "daphne"), default="web")
    parser.add_argument("--loadgen-procs", type=int, default=2)
    parser.add_argument(
        "--restart",
        choices=("none", "stop", "reload"),
        default="none",
        help="then restart the server (stop: stop and start it; reload: SIGHUP to config/web.py) and time the come-back",
    )
    args = parser.parse_args(argv if argv is not None else shlex.split(os.environ.get("BENCH_STORM_ARGS", "")))

    sys.path.insert(0, str(BASE_DIR))
    raise_fd_limit()
    if not os.environ.get("REDIS_URL"):
        from config.embedded import ensure_redis_url

        ensure_redis_url()
    VAR.mkdir(parents=True, exist_ok=True)
    db = VAR / "storm.sqlite3"
    symbols = symbol_names(args.symbols)
    token, portfolio_ids = prepare_storm_database(db, symbols, args.clients)
    clean_redis(os.environ["REDIS_URL"])
    clean_quote_cache(os.environ["REDIS_URL"])
    print(f"  load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)

    port = free_port()
    env = {**bench_env(db, LAYER), "WEB_CONCURRENCY": str(args.processes)}
    argv_ = server_argv(args.server, port, args.processes)
    log = (VAR / f"storm-{args.server}-{args.processes}-{args.clients}.log").open("wb")
    server = start_server(argv_, env, log, port, token)
    ctx = mp.get_context("spawn")
    procs: list[Any] = []
    try:
        warm_up(port, token)  # Django is up in (at least) one process: the storm starts after that
        time.sleep(1.0)
        out = ctx.Queue()
        start_at = time.time() + 2.0
        shared = {"out": out, "start_at": start_at, "restart": args.restart != "none"}
        plans = [
            [(i, portfolio_ids[i]) for i in range(k, args.clients, args.loadgen_procs)]
            for k in range(args.loadgen_procs)
        ]
        for plan in plans:
            proc = ctx.Process(target=storm_main, args=(port, token, plan, symbols, args.per_client, shared))
            proc.start()
            procs.append(proc)
        seconds: list[float] = []
        failures = 0
        codes: list[int] = []
        for _ in procs:
            _kind, result = out.get(timeout=900)
            seconds += result["seconds"]
            failures += result["failures"]
            codes += result["close_codes"]
        print(
            summary(f"storm of {args.clients} ({args.server}, {args.processes} process(es))", seconds, failures, codes)
        )
        if args.restart != "none":
            time.sleep(2.0)
            stopped_at = time.time()
            if args.restart == "reload":
                server.send_signal(signal.SIGHUP)  # new children; the socket stays open
            else:
                stop_server(server)
                clean_redis(os.environ["REDIS_URL"])  # as after a restart: no registry entries left
                server = start_server(argv_, env, log, port, token)
            back: list[float] = []
            failures, codes = 0, []
            for _ in procs:
                _kind, result = out.get(timeout=900)
                back += [t - stopped_at for t in result["times"]]
                failures += result["failures"]
                codes += result["close_codes"]
            print(summary(f"back after a restart ({args.restart}; from the signal)", back, failures, codes))
        print(f"  load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
        stop_server(server)
        log.close()


if __name__ == "__main__":
    main(sys.argv[1:])
