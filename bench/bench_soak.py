"""Chaos soak: web, worker, beat and Redis SIGKILLed in turn while hundreds of clients listen.

Not part of the default `make bench` set: run it by name,

    python -m bench bench_soak --minutes 10 --clients 500

It runs the Procfile's web, worker and beat lines as written (production settings,
REALTIME_UPDATE_INTERVAL=1, MARKET_DATA_SOURCES=simulated, WEB_CONCURRENCY as the
environment has it) on a PostgreSQL database of its own (--database-url) and a Redis server
it starts itself on a free port, restarts every process that dies after --restart-delay s,
and kills one of the four with SIGKILL every --kill-every s. The clients are the project's
Python client (reconnect with full jitter, resubscribe), each with its own user and token,
subscribed to --per-client of --symbols symbols. It reports prices stored vs published vs
delivered, duplicate cycles, resync times, each client's longest gap and each process's
memory at minute 2 and at the end; the details go to var/soak/soak-<time>.json.
See docs/soak.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
VAR = BASE_DIR / "var" / "soak"
DRAIN = 5.0


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench bench_soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--per-client", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=30, help="seconds between two SIGKILLs")
    parser.add_argument("--restart-delay", type=float, default=1.5, help="the platform's restart delay, seconds")
    parser.add_argument("--interval", type=int, default=1, help="REALTIME_UPDATE_INTERVAL")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("SOAK_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tickerflow_soak"),
    )
    parser.add_argument(
        "--web-concurrency", default=os.environ.get("WEB_CONCURRENCY", ""), help="WEB_CONCURRENCY for web"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reanalyse", metavar="RUN_DIR", help="only summarise a finished run's var/soak/<time>/ again")
    return parser.parse_args(argv)


def _seed(symbols: list[str], clients: int) -> list[str]:
    """One user and token per client (the per-user connection limit stays the default) and
    the symbols as tracked assets; idempotent across runs."""
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    from backend.market.models import Asset

    Asset.objects.bulk_create([Asset(symbol=s, tracking_status="tracked") for s in symbols], ignore_conflicts=True)
    names = [f"soak-{i}" for i in range(clients)]
    unusable = "!"  # Django's unusable password: token auth only
    User.objects.bulk_create([User(username=n, password=unusable) for n in names], ignore_conflicts=True)
    users = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
    Token.objects.bulk_create([Token(user_id=users[n], key=Token.generate_key()) for n in names], ignore_conflicts=True)
    tokens = dict(Token.objects.filter(user__username__in=names).values_list("user__username", "key"))
    return [tokens[n] for n in names]


def _sample_memory(procs: dict[str, Any], samples: list[dict[str, Any]], stop: threading.Event) -> None:
    while not stop.wait(5.0):
        samples.append(
            {
                "t": time.time(),
                "rss_kb": {name: proc.rss_kb() for name, proc in procs.items()},
                "pid": {name: proc.proc.pid if proc.proc else None for name, proc in procs.items()},
            }
        )


def main(argv: list[str] | None = None) -> None:
    args = _options(argv if argv is not None else [])
    sys.path.insert(0, str(BASE_DIR))
    from bench.soak.clients import clients_main
    from bench.soak.stack import ROLES, Supervised, SupervisedRedis, Supervisor, procfile_lines, soak_env
    from tests.live import free_port, wait_for_port

    if args.reanalyse:
        _summarise(Path(args.reanalyse), args.database_url)
        return
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_dir = VAR / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    web_port, redis_port = free_port(), free_port()
    env = soak_env(
        database_url=args.database_url,
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        port=web_port,
        interval=args.interval,
    )
    if args.web_concurrency:
        env["WEB_CONCURRENCY"] = args.web_concurrency
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    lines = procfile_lines()
    procs: dict[str, Supervised] = {"redis": SupervisedRedis(redis_port, run_dir)}
    procs["redis"].start()
    release = subprocess.run(["bash", "-c", lines["release"]], cwd=BASE_DIR, env=env, capture_output=True, text=True)
    if release.returncode:
        raise SystemExit(f"release failed:\n{release.stderr[-3000:]}")
    import django

    django.setup()
    symbols = [f"SOAK{i:02d}" for i in range(args.symbols)]
    tokens = _seed(symbols, args.clients)
    for role in ROLES:
        procs[role] = Supervised(role, lines[role], env, run_dir)
        procs[role].start()
    supervisor = Supervisor(procs, web_port, args.restart_delay)
    samples: list[dict[str, Any]] = []
    stop_sampling = threading.Event()
    sampler = threading.Thread(target=_sample_memory, args=(procs, samples, stop_sampling), daemon=True)
    from bench.soak.tap import PublishTap

    tap = PublishTap()
    ctx = mp.get_context("spawn")
    stop_clients, ready = ctx.Event(), ctx.Event()
    clients_out = run_dir / "clients.json"
    plan = [
        (tokens[i], [symbols[(i + k * 7) % len(symbols)] for k in range(args.per_client)]) for i in range(args.clients)
    ]
    clients = ctx.Process(
        target=clients_main,
        args=(f"ws://127.0.0.1:{web_port}/ws/realtime/", plan, stop_clients, ready, str(clients_out)),
    )
    try:
        wait_for_port(web_port, timeout=120)
        supervisor.start()
        tap.start()
        sampler.start()
        clients.start()
        if not ready.wait(600):
            raise SystemExit("the clients did not connect within 600 s")
        t0 = time.time()
        end = t0 + args.minutes * 60
        print(f"  {args.clients} clients up; chaos for {args.minutes:g} min (logs: {run_dir})", flush=True)
        rng = random.Random(args.seed)
        order: list[str] = []
        next_kill = t0 + args.kill_every
        while time.time() < end:
            if time.time() >= next_kill and next_kill < end - args.kill_every / 2:
                if not order:
                    order = ["worker", "web", "beat", "redis"]
                    rng.shuffle(order)
                victim = order.pop(0)
                supervisor.kill(victim)
                print(f"  {time.time() - t0:5.0f} s: SIGKILL {victim}", flush=True)
                next_kill += args.kill_every
            time.sleep(0.1)
        time.sleep(DRAIN)
        stop_clients.set()
        clients.join(120)
    finally:
        stop_clients.set()
        if clients.is_alive():
            clients.terminate()
        stop_sampling.set()
        supervisor.stop()
        for name in ("web", "worker", "beat", "redis"):
            if name in procs:
                try:
                    procs[name].stop()
                except Exception as error:  # stop the others all the same
                    print(f"  stopping {name} failed: {error!r}", file=sys.stderr)
        tap.stop()
    raw = {
        "options": vars(args),
        "started": t0,
        "ended": end,
        "symbols": symbols,
        "web_concurrency": env.get("WEB_CONCURRENCY", "(unset: the product's default)"),
        "web_command": lines["web"],
        "events": [asdict(e) for e in supervisor.events],
        "tap": {
            "published": list(tap.published),
            "batches": tap.batches,
            "resyncs": tap.resyncs,
            "outages": tap.outages,
        },
        "memory_samples": samples,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    (run_dir / "raw.json").write_text(json.dumps(raw))
    _summarise(run_dir, args.database_url)


def _summarise(run_dir: Path, database_url: str) -> None:
    from django.apps import apps

    if not apps.ready:  # --reanalyse: the ORM for the database's ground truth
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
        os.environ["DATABASE_URL"] = database_url
        import django

        django.setup()
    from bench.soak import report
    from bench.soak.summary import soak_summary

    result = soak_summary(run_dir)
    out = VAR / f"soak-{run_dir.name}.json"
    report.write_json(result, out)
    report.print_table(result)
    print(f"details: {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
