"""Price alerts: 100,000 active alerts over 5,000 symbols, checked per 50-symbol batch.

Needs DATABASE_URL naming a PostgreSQL server: the benchmark creates its own scratch database
(`<name>_bench_alerts`), migrates it, fills it with set-based SQL, measures and drops it.

What it measures is `backend.alerts.services.check.alerts_check` as the pipeline calls it
for each stored batch (the one statement, its round trip, and building the notification
events), with prices that move a little each cycle so that a few alerts fire and re-arm:
- one 50-symbol batch: the median and p95 over every batch of the cycles (target <= 10 ms);
- a 5,000-symbol cycle (100 batches): the total check time (target <= 0.3 s);
- a burst: one batch whose prices jump 25 %, firing hundreds of alerts at once;
- quote stored -> `notification` in the client (target p99 <= 250 ms with 1,000 clients):
  a real Daphne on the scratch database and Redis, 1,000 clients (one per alert owner, each
  also subscribed to 10 symbols; the stream bench's raw client, 2 load-generator processes),
  and the pipeline run in this process as the stream process runs it: each batch of trades
  stored by `stream_trades_store`, then `tasks.prices.stored_batch_complete` (the check, one
  layer message with the prices and the notifications, the revaluation request). Latency =
  the client's receive time - the time the batch's quotes were committed.

    python -m bench bench_alerts [--clients 1000] [--cycles 5] [--no-latency]

What bounds it: per batch, 50 quotes x 4 conditions index range scans on
(asset, condition, threshold) of the armed (or disarmed) active alerts; only the alerts a
quote fires or re-arms are read, locked and written, so the cost follows the firings, not
the 100,000 alerts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bench.bench_stream import LAYER, Clients, Received, loadgens_start, processes_end
from bench.fanout.processes import BASE_DIR, VAR, bench_env, proc_cpu_seconds
from bench.fanout.report import percentile

SYMBOLS = 5_000
ALERTS = 100_000
USERS = 1_000
BATCH = 50
CYCLES = 5
BATCH_TARGET_MS = 10.0
CYCLE_TARGET_S = 0.3
NOTIFY_TARGET_MS = 250.0
PER_CLIENT = 10  # symbols each latency client subscribes to


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # not a line per firing
    import django

    django.setup()


def _fill(cursor: Any) -> None:
    cursor.execute("SELECT setseed(0.16)")
    cursor.execute(
        """
        INSERT INTO auth_user (username, password, is_superuser, first_name, last_name, email,
                               is_staff, is_active, date_joined)
        SELECT 'bench' || g, '!', false, '', '', '', false, true, now() FROM generate_series(1, %s) g
        """,
        [USERS],
    )
    cursor.execute(
        """
        INSERT INTO market_asset (symbol, name, asset_type, currency, exchange, is_active, tracking_status,
                                  last_error, created_at, updated_at)
        SELECT 'B' || lpad(g::text, 5, '0'), '', 'stock', 'USD', '', true, 'tracked', '', now(), now()
        FROM generate_series(0, %s - 1) g
        """,
        [SYMBOLS],
    )
    # Each symbol's base price is 100 + its number mod 900; thresholds 1-30 % away from it
    # (price alerts) or 1-10 % (change alerts); 40 % above, 40 % below, 10 % each change
    # condition; half of them re-arm.
    cursor.execute(
        """
        INSERT INTO alerts_alert (owner_id, asset_id, condition, threshold, repeat, active, armed, created_at)
        SELECT u.id, a.id, c.condition,
               round(CASE c.condition
                   WHEN 'above' THEN a.base * (1.01 + random() * 0.29)
                   WHEN 'below' THEN a.base * (0.99 - random() * 0.29)
                   WHEN 'change_percent_above' THEN 1 + random() * 9
                   ELSE -1 - random() * 9 END::numeric, 6),
               CASE WHEN g %% 2 = 0 THEN 'rearm' ELSE 'once' END, true, true, now()
        FROM generate_series(0, %s - 1) g
        JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n, 100 + (row_number() OVER (ORDER BY id) - 1) %% 900
              AS base FROM market_asset) a ON a.n = g %% %s
        JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM auth_user) u ON u.n = g %% %s
        CROSS JOIN LATERAL (SELECT CASE WHEN g %% 10 < 4 THEN 'above' WHEN g %% 10 < 8 THEN 'below'
                                   WHEN g %% 10 = 8 THEN 'change_percent_above'
                                   ELSE 'change_percent_below' END AS condition) c
        """,
        [ALERTS, SYMBOLS, USERS],
    )
    cursor.execute("ANALYZE")


def _quotes(symbols: list[str], prices: dict[str, Decimal], at: datetime, jump: float = 0.0) -> list[Any]:
    from backend.alerts.services.check import CheckedQuote

    rng = random.Random(at.timestamp())
    out = []
    for symbol in symbols:
        base = prices[symbol]
        move = Decimal(str(round(jump or rng.gauss(0, 0.01), 6)))
        price = (base * (1 + move)).quantize(Decimal("0.000001"))
        out.append(CheckedQuote(symbol, price, (move * 100).quantize(Decimal("0.000001")), at))
    return out


def _run() -> list[tuple[str, str, str]]:
    from django.db import connection

    from backend.alerts.models import Alert, AlertEvent
    from backend.alerts.services.check import alerts_check

    with connection.cursor() as cursor:
        started = time.perf_counter()
        _fill(cursor)
        filled = time.perf_counter() - started
    symbols = [f"B{i:05d}" for i in range(SYMBOLS)]
    prices = {s: Decimal(100 + i % 900) for i, s in enumerate(symbols)}
    batches = [symbols[i : i + BATCH] for i in range(0, SYMBOLS, BATCH)]
    start = datetime.now(UTC)
    alerts_check(quotes=_quotes(batches[0], prices, start - timedelta(days=1)))  # warm the plan and the cache
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend_pid = cursor.fetchone()[0]
    per_batch: list[float] = []
    cycles: list[float] = []
    # CPU seconds (this process inside the check, PostgreSQL's backend) per cycle: what the
    # check costs whatever else the machine runs, where the wall time moves with the load.
    cpu_client: list[float] = []
    cpu_server: list[float] = []
    fired = 0
    for cycle in range(CYCLES):
        at = start + timedelta(seconds=30 * cycle)
        total = client = 0.0
        server0 = proc_cpu_seconds(backend_pid)
        for batch in batches:
            quotes = _quotes(batch, prices, at)
            t0, c0 = time.perf_counter(), time.process_time()
            result = alerts_check(quotes=quotes)
            took = time.perf_counter() - t0
            client += time.process_time() - c0
            fired += len(result.fired)
            per_batch.append(took)
            total += took
        cycles.append(total)
        cpu_client.append(client)
        cpu_server.append(proc_cpu_seconds(backend_pid) - server0)
    burst_at = start + timedelta(seconds=30 * CYCLES)
    burst_quotes = _quotes(batches[7], prices, burst_at, jump=0.25)
    t0 = time.perf_counter()
    burst = alerts_check(quotes=burst_quotes)
    burst_s = time.perf_counter() - t0
    per_batch.sort()
    median_ms = statistics.median(per_batch) * 1000
    p95_ms = per_batch[int(len(per_batch) * 0.95)] * 1000
    active = Alert.objects.filter(active=True).count()
    return [
        ("setup", f"{ALERTS:,} alerts over {SYMBOLS:,} symbols, {USERS:,} users", f"filled in {filled:.1f} s"),
        (
            f"one {BATCH}-symbol batch",
            f"median {median_ms:.2f} ms, p95 {p95_ms:.2f} ms over {len(per_batch)} batches",
            f"target <= {BATCH_TARGET_MS:.0f} ms median: {'met' if median_ms <= BATCH_TARGET_MS else 'MISSED'}",
        ),
        (
            f"a {SYMBOLS:,}-symbol cycle",
            "total check " + ", ".join(f"{c:.3f}" for c in cycles) + " s",
            f"target <= {CYCLE_TARGET_S} s: {'met' if max(cycles) <= CYCLE_TARGET_S else 'MISSED'} "
            f"(median {statistics.median(cycles):.3f} s)",
        ),
        (
            "  CPU a cycle",
            f"checking process {statistics.median(cpu_client) * 1000:.0f} ms, "
            f"PostgreSQL {statistics.median(cpu_server) * 1000:.0f} ms (medians)",
            "the cost under any load",
        ),
        (
            "firings",
            f"{fired:,} over {CYCLES} cycles",
            f"{AlertEvent.objects.count():,} stored, {active:,} still active",
        ),
        ("burst: prices +25 %", f"{len(burst.fired)} fired in one batch", f"{burst_s * 1000:.1f} ms"),
    ]


def _tokens(cursor: Any) -> list[str]:
    """One API token per bench user, in user id order (client i signs in as user i)."""
    cursor.execute(
        "INSERT INTO authtoken_token (key, created, user_id) SELECT md5('bench' || id), now(), id FROM auth_user"
    )
    cursor.execute("SELECT t.key FROM authtoken_token t ORDER BY t.user_id")
    return [row[0] for row in cursor.fetchall()]


def _quotes_fill(cursor: Any) -> None:
    """Every symbol's stored quote at its base price (the previous close a trade's change
    is computed from)."""
    cursor.execute(
        """
        INSERT INTO market_quote (asset_id, price, previous_close, source, quoted_at, fetched_at)
        SELECT id, 100 + (row_number() OVER (ORDER BY id) - 1) % 900, 100 + (row_number() OVER (ORDER BY id) - 1) % 900,
               'yahoo', now() - interval '1 day', now()
        FROM market_asset
        """
    )


def notifications_summarise(raw: Received, clients: list[int], expected: Any, spec: Clients) -> Any:
    """Each received notification: (receive time, client, symbol, price, event id)."""
    out = []
    for _phase, i, at, payload in raw:
        message = json.loads(payload)
        if message["type"] == "notification":
            data = message["data"]
            out.append((at, i, data["symbol"], round(data["price"], 6), data["event_id"]))
    return clients, out


def _latency(args: argparse.Namespace, pg_url: str) -> list[tuple[str, str, str]]:
    """Quote stored -> notification in the client, with args.clients clients connected."""
    from django.db import connection

    from backend.alerts.models import AlertEvent
    from backend.market.services.stream.base import Trade
    from backend.market.services.stream.store import stream_trades_store
    from tasks.prices import stored_batch_complete
    from tests.live import free_port, wait_for_port

    with connection.cursor() as cursor:
        _quotes_fill(cursor)
        tokens = _tokens(cursor)
        cursor.execute("SELECT id FROM auth_user ORDER BY id")
        user_ids = [row[0] for row in cursor.fetchall()]
    symbols = [f"B{i:05d}" for i in range(SYMBOLS)]
    prices = {s: Decimal(100 + i % 900) for i, s in enumerate(symbols)}
    batches = [symbols[i : i + BATCH] for i in range(0, SYMBOLS, BATCH)]
    env = {**bench_env(VAR / "unused.sqlite3", LAYER), "DATABASE_URL": pg_url}
    VAR.mkdir(parents=True, exist_ok=True)
    log = (VAR / "alerts-daphne.log").open("wb")
    port = free_port()
    daphne = subprocess.Popen(
        [sys.executable, "-m", "daphne", "--bind", "127.0.0.1", "--port", str(port), "config.asgi:application"],
        cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    procs: list[Any] = []
    try:
        wait_for_port(port)
        n = min(args.clients, len(tokens))
        specs = [
            Clients(port, tokens, list(range(k, n, 2)), symbols, PER_CLIENT, marker=b'"notification"') for k in range(2)
        ]
        procs, out, ends, _phase = loadgens_start(specs, notifications_summarise)
        connecting = time.monotonic()
        connected = sum(out.get(timeout=900)[1] for _ in procs)
        connect_s = time.monotonic() - connecting
        _phase.value = 0
        first_event = AlertEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        stored_at: dict[tuple[str, float], float] = {}
        start = datetime.now(UTC) + timedelta(hours=1)  # after every quote time the check figures used
        cpu0 = (proc_cpu_seconds(daphne.pid), time.process_time(), time.monotonic())
        for cycle in range(args.cycles):
            at = start + timedelta(seconds=30 * (cycle + 1))
            for batch in batches:
                quotes = _quotes(batch, prices, at)
                trades = [Trade(symbol=q.symbol, price=q.price, traded_at=q.quoted_at) for q in quotes]
                result = stream_trades_store(trades=trades, source="finnhub_ws")
                committed = time.time()
                for q in quotes:
                    stored_at[(q.symbol, round(float(q.price), 6))] = committed
                stored_batch_complete(result)
        cpu1 = (proc_cpu_seconds(daphne.pid), time.process_time(), time.monotonic())
        time.sleep(3.0)  # the last notifications reach the clients
        for end in ends:
            end.put(None)
        received: list[tuple[float, int, str, float, int]] = []
        clients: set[int] = set()
        for _ in procs:
            _kind, (mine, got) = out.get(timeout=300)
            clients.update(mine)
            received.extend(got)
    finally:
        processes_end(procs, daphne)
        log.close()
    owners = {user_ids[i]: i for i in clients}
    fired = AlertEvent.objects.filter(id__gt=first_event).values_list("id", "owner_id")
    expected = {(event_id, owners[owner]) for event_id, owner in fired if owner in owners}
    got_ids = {(event_id, i) for _at, i, _s, _p, event_id in received}
    latencies = [(at - stored_at[(s, p)]) * 1000 for at, _i, s, p, _e in received if (s, p) in stored_at]
    p99 = percentile(latencies, 0.99)
    wall = cpu1[2] - cpu0[2]
    return [
        (
            "quote stored -> notification",
            f"{connected:,} clients ({connect_s:.0f} s to connect), {args.cycles} cycles of {len(batches)} batches",
            f"{len(expected):,} firings to connected owners, {len(expected - got_ids)} not received",
        ),
        (
            "  latency",
            f"p50 {percentile(latencies, 0.5):.1f} ms, p99 {p99:.1f} ms, max {max(latencies, default=float('nan')):.1f} ms",
            f"target p99 <= {NOTIFY_TARGET_MS:.0f} ms: {'met' if p99 <= NOTIFY_TARGET_MS else 'MISSED'} "
            f"({len(latencies):,} notifications)",
        ),
        (
            "  CPU during the cycles",
            f"Daphne {100 * (cpu1[0] - cpu0[0]) / wall:.0f} %, pipeline {100 * (cpu1[1] - cpu0[1]) / wall:.0f} %",
            f"{wall / args.cycles:.2f} s a cycle",
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=USERS, help="latency clients, one per alert owner")
    parser.add_argument("--cycles", type=int, default=CYCLES, help="pipeline cycles in the latency run")
    parser.add_argument("--no-latency", action="store_true", help="only the check's figures")
    args = parser.parse_args(argv if argv is not None else shlex.split(os.environ.get("BENCH_ALERTS_ARGS", "")))
    _setup_django()
    from django.db import connection

    from bench.scratch import scratch_database

    with scratch_database("bench_alerts") as ready:
        if not ready:
            return
        try:
            rows = _run()
            if not args.no_latency:
                # The same server as DATABASE_URL, the scratch database: Daphne reads it too.
                url = f"{os.environ['DATABASE_URL'].split('?')[0].rsplit('/', 1)[0]}/{connection.settings_dict['NAME']}"
                rows += _latency(args, url)
        finally:
            connection.close()
    print(f"PostgreSQL {connection.pg_version}")  # type: ignore[attr-defined]
    for step, figure, note in rows:
        print(f"{step:<30} {figure:<66} {note}")


if __name__ == "__main__":
    main(sys.argv[1:])
