"""seed_demo's simulated history: the first run's backfill and the second run's cost.

Needs DATABASE_URL naming a PostgreSQL server: the benchmark creates its own scratch database
(`<name>_bench_seed_history`), migrates it, measures and drops it. Redis is REDIS_URL's.

What it measures, with the `simulated` source (make run's default):
- the whole `seed_demo` command on an empty database (assets, ledgers, watchlist, and the
  simulated daily closes of every demo asset and pair since the ledgers' first day), and the
  history part alone: computing the closes and their bulk insert;
- a second `seed_demo` on the seeded database (make run seeds on every start): nothing
  computed or written; split into the ledgers' own idempotency check (code this feature did
  not change: the "before") and the watchlist and history checks it added (target <= 100 ms
  for those);
- the computation alone: simulated closes per second in this process.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime
from io import StringIO

REPEAT = 5
ADDED_TARGET_S = 0.1


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()


def _run() -> list[tuple[str, str, str]]:
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from backend.dashboard.demo import demo_watchlist_seed
    from backend.market.models import PriceHistory
    from backend.market.services.sources.simulated import _pin_offset, _pins, _shared_normal, simulated_value
    from backend.portfolios.demo import (
        DEMO_ASSETS,
        DEMO_USERNAME,
        demo_data_seed,
        demo_history_days,
        demo_history_seed,
    )

    settings.MARKET_DATA_SOURCES = ["simulated"]
    started = time.perf_counter()
    call_command("seed_demo", stdout=StringIO())
    first = time.perf_counter() - started
    bars = PriceHistory.objects.count()
    now = datetime.now(UTC)
    days = demo_history_days(now=now, at_least=settings.HISTORY_BACKFILL_DAYS)

    PriceHistory.objects.all().delete()
    started = time.perf_counter()
    history = demo_history_seed(days=days, now=now)
    history_only = time.perf_counter() - started
    assert history is not None

    seconds = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        call_command("seed_demo", stdout=StringIO())
        seconds.append(time.perf_counter() - started)
    assert PriceHistory.objects.count() == bars
    second = statistics.median(seconds)
    # The part of a second run this feature added, beside the ledgers' own (unchanged) check.
    ledgers, added = [], []
    demo_id = User.objects.get(username=DEMO_USERNAME).pk
    for _ in range(REPEAT):
        started = time.perf_counter()
        demo_data_seed(with_logins=settings.DEMO_LOGINS)
        ledgers.append(time.perf_counter() - started)
        started = time.perf_counter()
        demo_watchlist_seed(user_id=demo_id)
        demo_history_seed(days=days, now=now)
        added.append(time.perf_counter() - started)

    symbols = [symbol for symbol, *_ in DEMO_ASSETS]
    for cached in (_shared_normal, _pin_offset, _pins):
        cached.cache_clear()
    started = time.perf_counter()
    closes = len(symbols) * 365
    for n in range(closes):
        simulated_value(symbols[n % len(symbols)], now.timestamp() - 86400 * (n // len(symbols)))
    per_second = closes / (time.perf_counter() - started)
    return [
        ("first seed_demo", f"{first:.2f} s", f"{bars:,} bars, {days} days x {bars // days} symbols"),
        ("its history part", f"{history_only:.2f} s", f"{history.inserted:,} bars computed and inserted"),
        ("second seed_demo", f"median {second * 1000:.0f} ms over {REPEAT}", "writes nothing"),
        (
            "  of which",
            f"ledgers {statistics.median(ledgers) * 1000:.0f} ms",
            f"watchlist + history checks {statistics.median(added) * 1000:.1f} ms, the part this seed added: "
            f"target <= {ADDED_TARGET_S * 1000:.0f} ms {'met' if statistics.median(added) <= ADDED_TARGET_S else 'MISSED'}",
        ),
        ("simulated closes", f"{per_second:,.0f} /s", "one process, caches emptied first, a year of daily closes"),
    ]


def main() -> None:
    _setup_django()
    from django.db import connection

    from bench.scratch import scratch_database

    with scratch_database("bench_seed_history") as ready:
        rows = _run() if ready else []
    if rows:
        print(f"PostgreSQL {connection.pg_version}")  # type: ignore[attr-defined]
    width = max((len(r[0]) for r in rows), default=0)
    for name, figure, note in rows:
        print(f"  {name:<{width}}  {figure:<24}  {note}")


if __name__ == "__main__":
    main()
