"""Returns: the performance call over 5 years of daily values and 1,000 transactions, and the end-of-day pass over 10,000 portfolios.

Needs DATABASE_URL naming a PostgreSQL server: the benchmark creates its own scratch database
(`<name>_bench_returns`), migrates it, measures, and drops it.

(a) One portfolio: 1,000 transactions (buys, sells, dividends, a split, fees) over 5 years in
    20 symbols (a third in EUR through EURUSD=X, a third in GBp through GBPUSD=X), each with a
    daily close for every day of the 5 years (and 3 intraday rows a day the close must skip).
    Its 1,827 daily values derived once (timed), then 100 GET /api/portfolios/<id>/performance/
    calls (range max), p95 (target <= 100 ms); also with ?benchmark=^GSPC and range 1y.
(b) 10,000 portfolios x 20 positions over 500 symbols (a third EUR, a third GBp), one buy per
    position a month ago, every day's rows stored up to the day before yesterday; yesterday's
    closes arrive; the end-of-day pass (daily_values_close: yesterday and today for every
    portfolio), five runs: median, best, worst (target <= 5 s).
The ledger's receivers (revaluation, re-derivation) are disconnected: no task leaves the run.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from bench.bench_valuation import _setup_django
from bench.scratch import scratch_database

Row = tuple[str, float, str]
YEARS_DAYS = 5 * 365 + 1
TRANSACTIONS = 1_000
CALLS = 100
TARGET_CALL_MS = 100.0
PORTFOLIOS = 10_000
POSITIONS_EACH = 20
ASSETS = 500
ROUNDS = 5
TARGET_CLOSE_SECONDS = 5.0
PAIRS = {"EURUSD=X": Decimal("1.08"), "GBPUSD=X": Decimal("1.26")}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _history_fill(cursor, symbols: list[str], first: date, last: date, intraday: int) -> None:
    """A close (20:00 UTC) per symbol and day, a random walk, and `intraday` earlier rows."""
    cursor.execute(
        """
        INSERT INTO market_pricehistory (asset_id, quoted_at, price, source)
        SELECT a.id, (g.day + make_interval(hours => 20 - k.k))::timestamp AT TIME ZONE 'UTC',
               round((CASE WHEN a.symbol LIKE '%%=X' THEN 1 ELSE 100 END
                      * (1 + 0.2 * sin(extract(epoch FROM g.day) / 864000 + a.id))
                      * (1 + 0.01 * k.k))::numeric, 6),
               'bench'
        FROM market_asset a
        CROSS JOIN generate_series(%s::timestamp, %s::timestamp, interval '1 day') AS g(day)
        CROSS JOIN generate_series(0, %s) AS k(k)
        WHERE a.symbol = ANY(%s)
        ON CONFLICT DO NOTHING
        """,
        [first, last, intraday, symbols],
    )


def _assets(prefix: str, count: int) -> list[tuple[str, str]]:
    kinds = [("", "USD"), (".DE", "EUR"), (".L", "GBp")]
    return [(f"{prefix}{n}{kinds[n % 3][0]}", kinds[n % 3][1]) for n in range(count)]


def _assets_create(assets: list[tuple[str, str]]) -> None:
    from backend.market.models import Asset, Quote

    rows = [Asset(symbol=s, currency=c, currency_locked=True, tracking_status="tracked") for s, c in assets]
    rows += [Asset(symbol=pair, currency="USD", tracking_status="tracked") for pair in PAIRS]
    Asset.objects.bulk_create(rows, ignore_conflicts=True)
    now = datetime.now(UTC)
    quotes = [
        Quote(asset=a, price=PAIRS.get(a.symbol, Decimal(101)), source="bench", quoted_at=now, fetched_at=now)
        for a in Asset.objects.filter(symbol__in=[s for s, _ in assets] + list(PAIRS))
    ]
    Quote.objects.bulk_create(quotes, ignore_conflicts=True)


def call_rows() -> list[Row]:
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from rest_framework.test import APIClient

    from backend.performance.services.daily_values import daily_values_derive
    from backend.portfolios.models import Portfolio
    from backend.portfolios.services.csv_import import transactions_import

    today = datetime.now(UTC).date()
    first = today - timedelta(days=YEARS_DAYS - 1)
    assets = _assets("R", 20)
    _assets_create([*assets, ("^GSPC", "USD")])
    with connection.cursor() as cursor:
        _history_fill(cursor, [s for s, _ in assets] + list(PAIRS) + ["^GSPC"], first, today, intraday=3)
        cursor.execute("ANALYZE")
    owner = User.objects.create_user("returns-bench")
    portfolio = Portfolio.objects.create(owner=owner, name="Five years")
    rng = random.Random(7)
    lines = ["date,type,symbol,quantity,price,fee,amount,ratio,currency,fx_rate,external_id"]
    held: dict[str, int] = {}
    for n in range(TRANSACTIONS):
        day = first + timedelta(days=n * (YEARS_DAYS - 2) // TRANSACTIONS)
        symbol, currency = assets[rng.randrange(len(assets))]
        fx = {"USD": "1", "EUR": "1.08", "GBp": "0.0126"}[currency]
        when = f"{day.isoformat()}T15:00:00Z"
        if n == TRANSACTIONS // 2:
            lines.append(f"{when},split,{symbol},,,,,2:1,,{fx},r{n}")
            held[symbol] = held.get(symbol, 0) * 2
        elif held.get(symbol, 0) >= 10 and n % 4 == 0:
            lines.append(f"{when},sell,{symbol},10,110,1,,,,{fx},r{n}")
            held[symbol] -= 10
        elif held.get(symbol, 0) > 0 and n % 7 == 0:
            lines.append(f"{when},dividend,{symbol},,,,12.5,,,{fx},r{n}")
        elif n % 50 == 0:
            lines.append(f"{when},fee,,,,,3,,USD,1,r{n}")
        else:
            lines.append(f"{when},buy,{symbol},5,{95 + n % 10},1,,,,{fx},r{n}")
            held[symbol] = held.get(symbol, 0) + 5
    result = transactions_import(portfolio=portfolio, content="\n".join(lines).encode())
    assert not result.errors, result.errors[:3]
    assert result.created == TRANSACTIONS
    started = time.perf_counter()
    derived = daily_values_derive(portfolio_id=portfolio.pk, since=first)
    derive_seconds = time.perf_counter() - started
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = APIClient()
    client.force_authenticate(owner)
    url = f"/api/portfolios/{portfolio.pk}/performance/"

    def timed(query: str) -> list[float]:
        for _ in range(5):  # warm-up
            client.get(url + query)
        elapsed = []
        for _ in range(CALLS):
            started = time.perf_counter()
            response = client.get(url + query)
            elapsed.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content[:300]
        return elapsed

    plain = timed("")
    body = client.get(url).json()
    benchmarked = timed("?benchmark=%5EGSPC")
    year = timed("?range=1y")
    p95 = _percentile(plain, 0.95)
    verdict = "meets" if p95 <= TARGET_CALL_MS else "misses"
    return [
        ("(a) derive 5 years, one portfolio", derive_seconds, f"{derived:,} rows from {TRANSACTIONS:,} transactions"),
        (
            f"performance max, p95 of {CALLS} (ms)",
            p95,
            f"median {statistics.median(plain):.1f} ms, {len(body['series']):,} points, twr {body['twr_percent']} %, "
            f"irr {body['irr_percent']} %; {verdict} the {TARGET_CALL_MS:.0f} ms target",
        ),
        (
            "  with ?benchmark=^GSPC, p95 (ms)",
            _percentile(benchmarked, 0.95),
            f"median {statistics.median(benchmarked):.1f} ms",
        ),
        ("  range 1y, p95 (ms)", _percentile(year, 0.95), f"median {statistics.median(year):.1f} ms"),
    ]


def _many_fill(today: date) -> None:
    from django.db import connection

    assets = _assets("M", ASSETS)
    _assets_create(assets)
    bought = today - timedelta(days=30)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO auth_user (username, password, is_superuser, first_name, last_name, email,
                                   is_staff, is_active, date_joined)
            SELECT 'm' || g, '!', false, '', '', '', false, true, now() FROM generate_series(1, 100) g
            """
        )
        cursor.execute(
            """
            INSERT INTO portfolios_portfolio (owner_id, name, base_currency, created_at, updated_at,
                                              realized_gain, dividends, fees)
            SELECT u.id, 'P' || g, 'USD', now(), now(), 0, 0, 0
            FROM generate_series(0, %s - 1) g JOIN auth_user u ON u.username = 'm' || (g %% 100 + 1)
            """,
            [PORTFOLIOS],
        )
        # Position k of portfolio p: asset (p + 25 k) mod 500, 10 shares bought at 100.
        cursor.execute(
            """
            WITH picks AS (
              SELECT p.id AS portfolio_id, a.id AS asset_id, a.currency,
                     CASE a.currency WHEN 'EUR' THEN 1.08 WHEN 'GBp' THEN 0.0126 ELSE 1 END AS fx
              FROM portfolios_portfolio p
              CROSS JOIN generate_series(0, %s - 1) k
              JOIN market_asset a ON a.symbol ~ '^M[0-9]+'
                   AND substring(a.symbol from '^M([0-9]+)')::int = (p.id + 25 * k) %% %s
            ),
            t AS (
              INSERT INTO portfolios_transaction (portfolio_id, asset_id, type, quantity, price, fee, ratio,
                                                  currency, fx_rate, executed_at, created_at)
              SELECT portfolio_id, asset_id, 'buy', 10, 100, 0, '', currency, fx, %s, now() FROM picks
            )
            INSERT INTO portfolios_position (portfolio_id, asset_id, quantity, average_cost, cost_basis, cost_local,
                                             realized_gain, dividends, valued, created_at, updated_at)
            SELECT portfolio_id, asset_id, 10, 100, 1000 * fx, 1000, 0, 0, false, now(), now() FROM picks
            """,
            [POSITIONS_EACH, ASSETS, datetime.combine(bought, datetime.min.time(), tzinfo=UTC) + timedelta(hours=15)],
        )
        # Yesterday's closes (the ones that just arrived), and the days before.
        _history_fill(cursor, [s for s, _ in assets] + list(PAIRS), bought, today - timedelta(days=1), intraday=0)
        # Every portfolio's rows stored up to the day before yesterday.
        cursor.execute(
            """
            INSERT INTO performance_dailyvalue (portfolio_id, date, value, net_flows, cost, realized_gain,
                                                dividends, fees, unpriced)
            SELECT p.id, g::date, 0, 0, 0, 0, 0, 0, 0
            FROM portfolios_portfolio p CROSS JOIN generate_series(%s::timestamp, %s::timestamp, interval '1 day') g
            WHERE p.name LIKE 'P%%'
            """,
            [bought, today - timedelta(days=2)],
        )
        cursor.execute("ANALYZE")


def close_rows() -> list[Row]:
    from backend.performance.models import DailyValue
    from backend.performance.services.daily_values import daily_values_close

    today = datetime.now(UTC).date()
    _many_fill(today)
    timings = []
    result = None
    for _ in range(ROUNDS):
        started = time.perf_counter()
        result = daily_values_close(today=today)
        timings.append(time.perf_counter() - started)
    assert result is not None
    stored = DailyValue.objects.filter(date=today - timedelta(days=1)).count()
    median = statistics.median(timings)
    verdict = "meets" if median <= TARGET_CLOSE_SECONDS else "misses"
    return [
        (
            f"(b) end-of-day pass, {PORTFOLIOS:,} portfolios",
            median,
            f"best {min(timings):.2f}, worst {max(timings):.2f} s of {ROUNDS}; {result.rows_closed:,} closed + "
            f"{result.rows_live:,} live rows, {result.portfolios_derived} one by one; {stored:,} rows for "
            f"yesterday; {verdict} the {TARGET_CLOSE_SECONDS:.0f} s target",
        )
    ]


def main() -> None:
    _setup_django()
    from backend.portfolios.signals import ledger_changed, portfolio_changed

    load = os.getloadavg()
    with scratch_database("bench_returns") as ready:
        if not ready:
            return
        portfolio_changed.disconnect(dispatch_uid="tasks.portfolios.revaluation_enqueue")
        ledger_changed.disconnect(dispatch_uid="tasks.performance.ledger_changed")
        rows = call_rows() + close_rows()
    print(f"{'step':<40} {'value':>8}  note")
    for step, value, note in rows:
        print(f"{step:<40} {value:>8.3f}  {note}")
    after = os.getloadavg()
    print(f"(seconds unless the step says ms; load average {load[0]:.2f} before, {after[0]:.2f} after)")


if __name__ == "__main__":
    main()
