"""Portfolio revaluation after a full price refresh: 10,000 portfolios of 20 positions.

Needs DATABASE_URL naming a PostgreSQL server: the benchmark creates its own scratch database
(`<name>_bench_valuation`), migrates it, fills it with set-based SQL, measures, writes the
EXPLAIN (ANALYZE, BUFFERS) plan of the revaluation statement to bench/valuation_plan.txt, and
drops it.

Live clients: 100 of the 1,000 users are connected and subscribe to their 10 portfolios each
(1,000 of the 10,000), registered in the connection registry (REDIS_URL) as one fake Daphne
node for the run: only their events are built (the revaluation's audience).
"""

from __future__ import annotations

import os
import re
import statistics
import time
from pathlib import Path
from typing import Any

PORTFOLIOS = 10_000
POSITIONS_EACH = 20
ASSETS = 500
USERS = 1_000
TARGET_SECONDS = 0.5
ROUNDS = 5
CONNECTED_USERS_EVERY = 10  # every 10th user is connected and subscribes to all their portfolios
PLAN_PATH = Path(__file__).with_name("valuation_plan.txt")


class EventsBuildTimer:
    """While open, adds the seconds the revaluation spends building events to `seconds`, so a
    round's storing can be timed apart from them."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> EventsBuildTimer:
        from backend.portfolios.services import revaluation

        self._module, self._build = revaluation, revaluation.events_build

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return self._build(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - began

        revaluation.events_build = timed
        return self

    def __exit__(self, *exc: object) -> None:
        self._module.events_build = self._build


def portfolio_updates(cursor) -> tuple[int, int]:
    """(UPDATEs, of which HOT) of portfolios_portfolio so far: a refresh's UPDATE should be HOT
    (migration 0007; docs/revaluation-performance.md)."""
    cursor.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(0.6)  # other connections flush their counters within a second of going idle
    cursor.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'portfolios_portfolio'")
    updates, hot = cursor.fetchone()
    return updates, hot


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()


def _fill(cursor) -> None:
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
        SELECT 'B' || g, '', 'stock', 'USD', '', true, 'tracked', '', now(), now() FROM generate_series(0, %s - 1) g
        """,
        [ASSETS],
    )
    cursor.execute(
        """
        INSERT INTO market_quote (asset_id, price, previous_close, source, quoted_at, fetched_at)
        SELECT id, round((10 + random() * 990)::numeric, 6), round((10 + random() * 990)::numeric, 6),
               'simulated', now(), now()
        FROM market_asset
        """
    )
    cursor.execute(
        """
        INSERT INTO portfolios_portfolio (owner_id, name, base_currency, created_at, updated_at)
        SELECT u.id, 'P' || g, 'USD', now(), now()
        FROM generate_series(0, %s - 1) g
        JOIN auth_user u ON u.username = 'bench' || (g %% %s + 1)
        """,
        [PORTFOLIOS, USERS],
    )
    # Position k of a portfolio holds asset (p + 25 k) mod 500: 20 distinct assets each.
    cursor.execute(
        """
        INSERT INTO portfolios_position (portfolio_id, asset_id, quantity, average_cost, created_at, updated_at)
        SELECT p.id, a.id, round((random() * 100 + 0.0001)::numeric, 10), round((random() * 900)::numeric, 6),
               now(), now()
        FROM portfolios_portfolio p
        CROSS JOIN generate_series(0, %s - 1) k
        JOIN market_asset a ON a.symbol = 'B' || ((p.id + 25 * k) %% %s)
        """,
        [POSITIONS_EACH, ASSETS],
    )
    cursor.execute("ANALYZE")


def settle_as_autovacuum_would(cursor: Any) -> None:
    """The fill and the first revaluation rewrote every position and portfolio. A server with
    autovacuum on (PostgreSQL's default, and production's) vacuums and analyzes tables after
    such a rewrite within a minute; a server with it off (this machine's) would leave every
    round scanning past hundreds of thousands of dead rows. The rounds are timed against the
    state production settles in (the pass finds the never-valued positions through a partial
    index, so the statistics matter too)."""
    cursor.execute("VACUUM (ANALYZE) portfolios_position, portfolios_portfolio, market_quote")


def _refresh_all_prices(cursor) -> None:
    # Every quote moves, by a sum of three uniforms: up to +-1.5 %, sd 0.5 %, so a few
    # percent of positions move "significantly" (> 1 %) and get a position_update.
    cursor.execute(
        """
        UPDATE market_quote
        SET price = round(price * (1 + (random() + random() + random() - 1.5) / 100)::numeric, 6),
            fetched_at = now()
        """
    )


def _clients_connect(node: str) -> tuple[int, int]:
    """Register the live clients in the connection registry as one fake Daphne node."""
    import json
    import time as time_

    from django.conf import settings

    from backend.portfolios.models import Portfolio
    from backend.realtime.registry import PREFIX, ConnectionManager

    owners: dict[int, list[int]] = {}
    for pk, owner_id in Portfolio.objects.order_by("pk").values_list("pk", "owner_id"):
        owners.setdefault(owner_id, []).append(pk)
    connected = sorted(owners)[::CONNECTED_USERS_EVERY]
    conns: dict[Any, Any] = {
        f"bench-{user}": json.dumps(
            {
                "connection_id": f"bench-{user}",
                "node": node,
                "user_id": user,
                "username": f"bench{user}",
                "auth": "token",
                "connected_at": time_.time(),
                "assets": [],
                "portfolios": owners[user],
            }
        )
        for user in connected
    }
    manager = ConnectionManager()
    pipe = manager.redis.pipeline()
    pipe.set(f"{PREFIX}alive:{node}", "1", ex=settings.WEBSOCKET_NODE_TTL * 20)
    pipe.sadd(f"{PREFIX}nodes", node)
    pipe.hset(f"{PREFIX}conns:{node}", mapping=conns)
    pipe.execute()
    return len(connected), sum(len(owners[u]) for u in connected)


def _clients_disconnect(node: str) -> None:
    from backend.realtime.registry import PREFIX, ConnectionManager

    manager = ConnectionManager()
    manager.redis.delete(f"{PREFIX}alive:{node}", f"{PREFIX}conns:{node}", f"{PREFIX}users:{node}")
    manager.redis.srem(f"{PREFIX}nodes", node)


def _run(node: str) -> list[tuple[str, float, str]]:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from backend.market.models import Asset
    from backend.portfolios.models import Portfolio
    from backend.portfolios.services.revaluation import portfolios_revalue_for_symbols
    from backend.portfolios.services.revaluation.audience import audience_live
    from backend.portfolios.services.revaluation.sql_pass import aggregation_memory_raise
    from backend.portfolios.valuation import portfolio_sums

    rows: list[tuple[str, float, str]] = []
    with connection.cursor() as cursor:
        started = time.perf_counter()
        _fill(cursor)
        rows.append(("fill (SQL)", time.perf_counter() - started, f"{PORTFOLIOS * POSITIONS_EACH} positions"))
    symbols = list(Asset.objects.values_list("symbol", flat=True))
    users, subscribed = _clients_connect(node)
    started = time.perf_counter()
    audience = audience_live()
    rows.append(
        (
            "live clients (registry read)",
            time.perf_counter() - started,
            f"{users} users connected, {subscribed} portfolios subscribed "
            f"({len(audience.portfolio_ids or ())} / {len(audience.owner_ids or ())} read back)",
        )
    )

    started = time.perf_counter()
    first = portfolios_revalue_for_symbols(symbols=symbols)
    rows.append(("first revaluation (stores all)", time.perf_counter() - started, f"{first.portfolios_changed} stored"))

    with connection.cursor() as cursor:
        settle_as_autovacuum_would(cursor)
    all_ids = list(Portfolio.objects.values_list("pk", flat=True))
    with transaction.atomic():  # the ORM aggregation reads (API, SQLite pass) use, for reference
        aggregation_memory_raise(share_size=len(all_ids))
        started = time.perf_counter()
        sums = portfolio_sums(portfolio_ids=all_ids)
        elapsed = time.perf_counter() - started
    rows.append(("ORM aggregation (reads only)", elapsed, f"{len(sums)} portfolios, 3 products per position"))

    # As a worker process runs the task: its startup heap frozen (config/celery.py).
    from django.conf import settings

    from config.gc_policy import gc_tune_process

    gc_tune_process(settings.WORKER_GC_THRESHOLDS)
    # ROUNDS full refreshes, each revalued: the host's speed varies from run to run, so the
    # median and the best of them, and the last one's queries.
    stored_times: list[float] = []
    events_times: list[float] = []
    with connection.cursor() as cursor:
        updates_before = portfolio_updates(cursor)
    with EventsBuildTimer() as timer:
        for _ in range(ROUNDS):
            with connection.cursor() as cursor:
                _refresh_all_prices(cursor)
            timer.seconds = 0.0
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                result = portfolios_revalue_for_symbols(symbols=symbols)
                elapsed = time.perf_counter() - started
            stored_times.append(elapsed - timer.seconds)
            events_times.append(timer.seconds)
    stored = statistics.median(stored_times)
    verdict = "meets" if stored <= TARGET_SECONDS else "misses"
    rows.append(
        (
            f"revalue + store, median of {ROUNDS}",
            stored,
            f"{result.portfolios_revalued / stored:,.0f} portfolios/s; best {min(stored_times):.3f} s, worst "
            f"{max(stored_times):.3f} s; {verdict} the {TARGET_SECONDS} s target",
        )
    )
    rows.append(
        (
            "    each round",
            stored,
            f"{result.portfolios_changed} stored, {result.snapshots_created} snapshots, "
            f"{result.positions_read} moved positions read for listeners, on "
            f"{settings.PORTFOLIO_RECALC_CONNECTIONS} connections",
        )
    )
    with connection.cursor() as cursor:
        updates, hot = (now - before for now, before in zip(portfolio_updates(cursor), updates_before, strict=True))
    rows.append(("    HOT updates", 0.0, f"{hot} of the rounds' {updates} portfolio UPDATEs were HOT"))
    for query in captured.captured_queries:
        if float(query["time"]) >= 0.01:
            rows.append(("    sql (this thread's)", float(query["time"]), " ".join(query["sql"].split()[:4])[:70]))
    kinds = [e["type"] for e in result.events]
    events_median = statistics.median(events_times)
    rows.append(
        (
            "  + build events (to_wire)",
            events_median,
            f"{kinds.count('portfolio_update')} portfolio_update, {kinds.count('position_update')} position_update",
        )
    )
    rows.append(("  = revaluation task body", stored + events_median, "without the Redis publish"))

    started = time.perf_counter()
    again = portfolios_revalue_for_symbols(symbols=symbols)
    rows.append(("rerun, same prices", time.perf_counter() - started, f"{again.portfolios_changed} stored"))

    # The plan of the pass itself, after another full price move (rolled back): the first of
    # the run's shares, as the run cuts them (a span of ids per connection).
    from datetime import UTC, datetime

    from backend.portfolios.services.revaluation.spans import portfolio_id_spans
    from backend.portfolios.services.revaluation.sql_statement import share_statement

    with connection.cursor() as cursor:
        _refresh_all_prices(cursor)
    span = portfolio_id_spans(connection_count=settings.PORTFOLIO_RECALC_CONNECTIONS)[0]
    low, high = span.low, span.high
    listened = audience.portfolios_listened(span.ids) or []
    sql, params = share_statement(
        span, now=datetime.now(UTC), heard=audience.portfolios_heard(span.ids), listened=listened
    )
    with transaction.atomic(), connection.cursor() as cursor:
        aggregation_memory_raise(share_size=len(span.ids))
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        plan = "\n".join(line for (line,) in cursor.fetchall())
        transaction.set_rollback(True)
    # The id array literals would fill the file: shown elided.
    plan = re.sub(r"ARRAY\[[0-9, ]{200,}\]|'\{[0-9,]{200,}\}'", "<ids>", plan)
    PLAN_PATH.write_text(
        f"-- the revaluation statement (backend/portfolios/services/revaluation/sql_statement.py) of the share "
        f"of portfolios {low}..{high} (of {PORTFOLIOS} x {POSITIONS_EACH} positions, {ASSETS} assets; the other "
        f"share runs beside it on a second connection), after a full price move, {len(listened)} of its "
        f"portfolios listened (PostgreSQL {connection.pg_version})\n\n{plan}\n"  # type: ignore[attr-defined]
    )
    return rows


def main() -> None:
    _setup_django()
    from bench.scratch import scratch_database

    node = f"bench-valuation:{os.getpid()}"
    with scratch_database("bench_valuation") as ready:
        if not ready:
            return
        try:
            rows = _run(node)
        finally:
            _clients_disconnect(node)
    print(f"{'step':<32} {'seconds':>8}  note")
    for step, seconds, note in rows:
        print(f"{step:<32} {seconds:>8.3f}  {note}")
    print(f"plan: {PLAN_PATH}")


if __name__ == "__main__":
    main()
