"""Price alerts: 100,000 active alerts over 5,000 symbols, checked per 50-symbol batch.

Needs DATABASE_URL naming a PostgreSQL server: the benchmark creates its own scratch database
(`<name>_bench_alerts`), migrates it, fills it with set-based SQL, measures and drops it.

What it measures is `backend.alerts.services.check.alerts_check` as the pipeline calls it
for each stored batch (the one statement, its round trip, and building the notification
events), with prices that move a little each cycle so that a few alerts fire and re-arm:
- one 50-symbol batch: the median and p95 over every batch of the cycles (target <= 10 ms);
- a 5,000-symbol cycle (100 batches): the total check time (target <= 0.3 s);
- a burst: one batch whose prices jump 25 %, firing hundreds of alerts at once.

What bounds it: per batch, 50 quotes x 4 conditions index range scans on
(asset, condition, threshold) of the armed (or disarmed) active alerts; only the alerts a
quote fires or re-arms are read, locked and written, so the cost follows the firings, not
the 100,000 alerts.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

SYMBOLS = 5_000
ALERTS = 100_000
USERS = 1_000
BATCH = 50
CYCLES = 5
BATCH_TARGET_MS = 10.0
CYCLE_TARGET_S = 0.3


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
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
    per_batch: list[float] = []
    cycles: list[float] = []
    fired = 0
    for cycle in range(CYCLES):
        at = start + timedelta(seconds=30 * cycle)
        total = 0.0
        for batch in batches:
            quotes = _quotes(batch, prices, at)
            t0 = time.perf_counter()
            result = alerts_check(quotes=quotes)
            took = time.perf_counter() - t0
            fired += len(result.fired)
            per_batch.append(took)
            total += took
        cycles.append(total)
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
            "firings",
            f"{fired:,} over {CYCLES} cycles",
            f"{AlertEvent.objects.count():,} stored, {active:,} still active",
        ),
        ("burst: prices +25 %", f"{len(burst.fired)} fired in one batch", f"{burst_s * 1000:.1f} ms"),
    ]


def main() -> None:
    _setup_django()
    from django.db import connection

    if connection.vendor != "postgresql":
        print("skipped: DATABASE_URL must name a PostgreSQL server")
        return
    test_settings = connection.settings_dict.setdefault("TEST", {})
    test_settings["NAME"] = f"{connection.settings_dict['NAME']}_bench_alerts"
    original_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        rows = _run()
    finally:
        connection.creation.destroy_test_db(original_name, verbosity=0)
    print(f"PostgreSQL {connection.pg_version}")  # type: ignore[attr-defined]
    for step, figure, note in rows:
        print(f"{step:<26} {figure:<58} {note}")


if __name__ == "__main__":
    main()
