"""Price pipeline: a 5,000-symbol cycle against FakeUpstream (20 ms a request), 2 workers.

Measures the time from dispatching a cycle to every quote committed. It creates its own
test database (dropped at the end), starts its own FakeUpstream and Celery worker processes
against REDIS_URL (or the embedded Redis), and stops them all. Do not point it at a Redis
database a running stack uses: it clears the pipeline's tf:* keys there.

What bounds it: one cycle is ~100 Yahoo requests of 50 symbols (20 ms each) plus, per
batch, one upsert, one history insert, one run-record update and one publish. Batches run
in parallel over the workers' processes; Yahoo sub-requests of a batch run on a thread pool.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from decimal import Decimal
from typing import Any

SYMBOLS = 5000
LATENCY = 0.020
CYCLES = 3


def _setup_django() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    import django

    django.setup()


def _seed(n: int) -> list[str]:
    from django.contrib.auth.models import User

    from backend.market.models import Asset
    from backend.portfolios.models import Portfolio, Position

    symbols = [f"B{i:05d}" for i in range(n)]
    Asset.objects.bulk_create([Asset(symbol=s) for s in symbols])
    user = User.objects.create(username="bench")
    portfolio = Portfolio.objects.create(owner=user, name="Bench")
    ids = Asset.objects.filter(symbol__in=symbols).values_list("id", flat=True)
    Position.objects.bulk_create(
        [Position(portfolio=portfolio, asset_id=i, quantity=Decimal(1), average_cost=Decimal(1)) for i in ids]
    )
    return symbols


def _clear_pipeline_keys() -> None:
    from backend.core.redis import redis_client

    client = redis_client()
    for key in client.scan_iter("tf:*", count=1000):
        client.delete(key)


def workers_cpu_seconds(workers: list[Any]) -> float:
    """CPU time (user + system) of the worker processes and their pool children so far: a
    figure that, unlike wall time, does not move when something else shares the machine."""
    import psutil  # type: ignore[import-untyped]

    total = 0.0
    for worker in workers:
        try:
            main = psutil.Process(worker.proc.pid)
            for proc in [main, *main.children(recursive=True)]:
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def servers_cpu_seconds() -> dict[str, float]:
    """CPU so far of the PostgreSQL and Redis server processes on this machine (the workers'
    database connections persist, so their backends' time is counted)."""
    import psutil

    totals = {"postgres": 0.0, "redis-server": 0.0}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        name = proc.info["name"] or ""
        for server in totals:
            if name.startswith(server) and proc.info["cpu_times"] is not None:
                totals[server] += proc.info["cpu_times"].user + proc.info["cpu_times"].system
    return totals


def _one_cycle(fake: Any, symbols: list[str], round_no: int, workers: list[Any]) -> dict[str, float]:
    from django.db.models import Max

    from backend.market.models import PriceHistory, Quote, RefreshRun
    from backend.market.services.refresh import prices_refresh_cycle

    at = int(time.time()) + round_no  # a new market time each round: new history rows
    for i, s in enumerate(symbols):
        fake.set_quote(s, 100 + round_no + i / 1000, previous_close=100.0, volume=1000 + i, at=at)
    fake.reset_requests()
    history_before = PriceHistory.objects.count()
    cpu_before = workers_cpu_seconds(workers)
    own_before = time.process_time()
    servers_before = servers_cpu_seconds()
    deadline = time.monotonic() + 30
    while True:
        start, start_wall = time.perf_counter(), time.time()
        dispatch = prices_refresh_cycle()
        if not dispatch.skipped_locked:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("previous cycle never released its lock")
        time.sleep(0.05)
    dispatched = time.perf_counter() - start
    assert dispatch.run_id is not None
    since = fake_time(at)
    # Timed from the rows, not by polling: a tight poll loop would compete with the workers
    # for the same two cores. Each batch stamps fetched_at just before its one upsert
    # statement and commit (a few ms, the `commit` stage of /api/realtime/status/).
    while not RefreshRun.objects.filter(pk=dispatch.run_id, finished_at__isnull=False).exists():
        if time.perf_counter() - start > 120:
            raise RuntimeError("cycle did not finish within 120 s")
        time.sleep(0.1)
    if Quote.objects.filter(quoted_at__gte=since).count() != len(symbols):
        raise RuntimeError("the run finished without every quote stored")
    last_stamp = Quote.objects.filter(quoted_at__gte=since).aggregate(last=Max("fetched_at"))["last"]
    finished_at = RefreshRun.objects.get(pk=dispatch.run_id).finished_at
    assert last_stamp is not None
    assert finished_at is not None
    committed = last_stamp.timestamp() - start_wall
    finished = finished_at.timestamp() - start_wall
    cpu = workers_cpu_seconds(workers) - cpu_before
    own = time.process_time() - own_before
    servers = {k: v - servers_before[k] for k, v in servers_cpu_seconds().items()}
    run = RefreshRun.objects.get(pk=dispatch.run_id)
    stored = Quote.objects.filter(quoted_at__gte=since).count()
    sizes = [len(r.symbols) for r in fake.requests["yahoo"]]
    return {
        "seconds": committed,
        "finished": finished,
        "dispatch": dispatched,
        "batches": run.batches_total,
        "stored": stored,
        "history": PriceHistory.objects.count() - history_before,
        "requests": len(sizes),
        "max_symbols": max(sizes) if sizes else 0,
        "failed": run.symbols_failed,
        "worker_cpu": cpu,
        "bench_cpu": own,
        "postgres_cpu": servers["postgres"],
        "redis_cpu": servers["redis-server"],
    }


def fake_time(at: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at, tz=UTC)


def main() -> None:
    _setup_django()
    from django.test.utils import setup_databases, teardown_databases

    from tests.fakes.upstream import fake_upstream
    from tests.live import celery_worker

    old = setup_databases(verbosity=0, interactive=False)
    rows = []
    try:
        symbols = _seed(SYMBOLS)
        with fake_upstream(latency=LATENCY) as fake:
            for batch_size, parallel in ((50, 4), (250, 5)):
                _clear_pipeline_keys()
                env: dict[str, Any] = fake.env(("yahoo",))  # worker settings, as strings
                env.update(
                    REALTIME_BATCH_SIZE=str(batch_size),
                    MARKET_DATA_PARALLEL_REQUESTS=str(parallel),
                    YAHOO_REQUESTS_PER_MINUTE="0",
                    LOG_LEVEL="WARNING",
                )
                os.environ["REALTIME_BATCH_SIZE"] = str(batch_size)
                from django.conf import settings

                settings.REALTIME_BATCH_SIZE = batch_size
                with (
                    celery_worker("bench1", concurrency=2, **env) as w1,
                    celery_worker("bench2", concurrency=2, **env) as w2,
                ):
                    _one_cycle(fake, symbols, 0, [w1, w2])  # warm-up: crumb, connections, imports
                    results = [_one_cycle(fake, symbols, r, [w1, w2]) for r in range(1, CYCLES + 1)]
                best = min(results, key=lambda r: r["seconds"])
                rows.append(
                    (
                        batch_size,
                        parallel,
                        statistics.median(r["seconds"] for r in results),
                        best["seconds"],
                        best["finished"],
                        best["dispatch"],
                        int(best["batches"]),
                        int(best["requests"]),
                        int(best["max_symbols"]),
                        int(best["stored"]),
                        int(best["history"]),
                        int(best["failed"]),
                        statistics.median(r["worker_cpu"] for r in results),
                        statistics.median(r["bench_cpu"] for r in results),
                        statistics.median(r["postgres_cpu"] for r in results),
                        statistics.median(r["redis_cpu"] for r in results),
                    )
                )
    finally:
        _clear_pipeline_keys()
        teardown_databases(old, verbosity=0)
    print(f"{SYMBOLS} symbols, {LATENCY * 1000:.0f} ms upstream latency, 2 worker processes x concurrency 2")
    print("median/best s: dispatch -> the last quote's batch stored it; run done s: -> run record finished")
    print(
        "worker cpu s: CPU the workers spent from dispatch to the run finished (median), chained revaluations included"
    )
    header = (
        "batch", "threads", "median s", "best s", "run done s", "dispatch s", "batches", "yahoo reqs", "max/req", "stored",
        "history", "failed", "worker cpu s", "bench cpu s", "pg cpu s", "redis cpu s",
    )  # fmt: skip
    print(" | ".join(f"{h:>10}" for h in header))
    for row in rows:
        print(" | ".join(f"{v:>10.3f}" if isinstance(v, float) else f"{v:>10}" for v in row))


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    main()
