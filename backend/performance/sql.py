"""The statements daily values are read and written with (docs/returns.md).

A day is a UTC calendar day. A day's close of a symbol is its last price-history row before
the day's end; today's is its latest quote. An asset's value in a base currency is `price *
fx`, with fx its pair's close of the same day times the unit factor (backend/market/
currency.py: GBp is 1/100 of GBP), or just the factor when no pair is needed.

`day_close_upsert` values a whole day for every portfolio in one statement, from the stored
positions: that is right for a portfolio none of whose transactions was executed after the
day's end (the positions are then its holdings at the day's end). The others are left to
the per-portfolio derivation (services/daily_values.py).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Max
from django.db.models.functions import TruncDate

from backend.market.currency import sql_factor_case, sql_major_case
from backend.market.models import Asset, PriceHistory, Quote

_MAJOR = sql_major_case("a.currency")
_FACTOR = sql_factor_case("a.currency")

# Money in (+) and out (-) of the holdings, per transaction (base currency).
FLOW_SQL = """
CASE t.type
  WHEN 'buy' THEN (t.quantity * t.price + t.fee) * t.fx_rate
  WHEN 'sell' THEN -(t.quantity * t.price - t.fee) * t.fx_rate
  WHEN 'dividend' THEN -t.amount * t.fx_rate
  WHEN 'fee' THEN t.amount * t.fx_rate
  ELSE 0
END
"""


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def utc_today() -> date:
    return datetime.now(UTC).date()


class Day(NamedTuple):
    """A portfolio's figures at a day's end (models.DailyValue's, without the count)."""

    date: date
    value: Decimal
    net_flows: Decimal
    cost: Decimal
    realized_gain: Decimal
    dividends: Decimal
    fees: Decimal


_DAY_SQL = f"""
WITH chosen AS (
  SELECT p.id, p.base_currency, p.realized_gain, p.dividends, p.fees
  FROM portfolios_portfolio p
  WHERE (%(all)s OR p.id = ANY(%(ids)s))
    AND EXISTS (SELECT 1 FROM portfolios_transaction t WHERE t.portfolio_id = p.id AND t.executed_at < %(end)s)
    AND (%(live)s OR NOT EXISTS (
      SELECT 1 FROM portfolios_transaction t WHERE t.portfolio_id = p.id AND t.executed_at >= %(end)s))
),
held AS (
  SELECT po.portfolio_id, po.asset_id, po.quantity,
         COALESCE(po.cost_basis, po.quantity * po.average_cost) AS cost,
         {_MAJOR} AS major, {_FACTOR} AS factor, upper(c.base_currency) AS base
  FROM chosen c
  JOIN portfolios_position po ON po.portfolio_id = c.id AND po.quantity > 0
  JOIN market_asset a ON a.id = po.asset_id
),
needed AS (
  SELECT DISTINCT asset_id AS id FROM held
  UNION
  SELECT a.id FROM market_asset a
  WHERE a.symbol IN (SELECT DISTINCT major || base || '=X' FROM held WHERE major <> base)
),
closes AS (
  -- Live: the latest quote, or the last history row when there is no quote yet (after a
  -- backfill, before the first fetch), as closes_read does.
  SELECT a.id, a.symbol, COALESCE(q.price, h.price) AS price
  FROM needed n
  JOIN market_asset a ON a.id = n.id
  LEFT JOIN market_quote q ON %(live)s AND q.asset_id = a.id
  LEFT JOIN LATERAL (
    SELECT ph.price FROM market_pricehistory ph
    WHERE q.price IS NULL AND ph.asset_id = a.id AND ph.quoted_at < %(end)s
    ORDER BY ph.quoted_at DESC LIMIT 1
  ) h ON true
),
valued AS (
  SELECT held.portfolio_id, held.cost,
         held.quantity * px.price * CASE WHEN held.major = held.base THEN held.factor
                                         ELSE fx.price * held.factor END AS value
  FROM held
  LEFT JOIN closes px ON px.id = held.asset_id
  LEFT JOIN closes fx ON fx.symbol = held.major || held.base || '=X'
),
totals AS (
  SELECT portfolio_id, COALESCE(SUM(value), 0) AS value, SUM(cost) AS cost,
         COUNT(*) FILTER (WHERE value IS NULL) AS unpriced
  FROM valued GROUP BY portfolio_id
),
flows AS (
  SELECT t.portfolio_id, SUM({FLOW_SQL}) AS net_flows
  FROM portfolios_transaction t
  WHERE t.portfolio_id IN (SELECT id FROM chosen) AND t.executed_at >= %(start)s AND t.executed_at < %(end)s
  GROUP BY t.portfolio_id
)
SELECT c.id, COALESCE(tt.value, 0), COALESCE(f.net_flows, 0), COALESCE(tt.cost, 0),
       c.realized_gain, c.dividends, c.fees, COALESCE(tt.unpriced, 0)
FROM chosen c
LEFT JOIN totals tt ON tt.portfolio_id = c.id
LEFT JOIN flows f ON f.portfolio_id = c.id
"""  # noqa: S608 (constant pieces: currency.py's CASEs and FLOW_SQL)

_UPSERT_SQL = f"""
INSERT INTO performance_dailyvalue
  (portfolio_id, date, value, net_flows, cost, realized_gain, dividends, fees, unpriced)
SELECT v.id, %(day)s::date, v.value, v.net_flows, v.cost, v.realized_gain, v.dividends, v.fees, v.unpriced
FROM ({_DAY_SQL}) AS v (id, value, net_flows, cost, realized_gain, dividends, fees, unpriced)
ON CONFLICT (portfolio_id, date) DO UPDATE SET
  value = EXCLUDED.value, net_flows = EXCLUDED.net_flows, cost = EXCLUDED.cost,
  realized_gain = EXCLUDED.realized_gain, dividends = EXCLUDED.dividends, fees = EXCLUDED.fees,
  unpriced = EXCLUDED.unpriced
"""  # noqa: S608 (the constant statement above)


def _day_params(day: date, live: bool, portfolio_ids: Collection[int] | None) -> dict[str, Any]:
    start, end = day_bounds(day)
    ids = sorted(portfolio_ids) if portfolio_ids is not None else []
    return {"day": day, "start": start, "end": end, "live": live, "all": portfolio_ids is None, "ids": ids}


def day_figures(*, day: date, live: bool, portfolio_ids: Collection[int] | None = None) -> dict[int, Day]:
    """The day's figures of the portfolios valued from their stored positions (PostgreSQL),
    by portfolio. `live`: today, at the latest quotes (transactions dated later count as held)."""
    with connection.cursor() as cursor:
        cursor.execute(_DAY_SQL, _day_params(day, live, portfolio_ids))
        return {row[0]: Day(day, *row[1:7]) for row in cursor.fetchall()}


def day_close_upsert(*, day: date, live: bool, portfolio_ids: Collection[int] | None = None) -> int:
    """Store the day's figures of every portfolio `day_figures` covers, in one statement."""
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT_SQL, _day_params(day, live, portfolio_ids))
        return cursor.rowcount


def portfolios_moved_after(*, day: date) -> list[int]:
    """Portfolios with a transaction executed after the day's end, whose positions are not
    their holdings of that day."""
    _, end = day_bounds(day)
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT portfolio_id FROM portfolios_transaction WHERE executed_at >= %s", [end])
        return [row[0] for row in cursor.fetchall()]


def portfolios_behind(*, day: date) -> list[tuple[int, date]]:
    """Portfolios with transactions up to `day` missing a row between their last one before
    the day before it and that day (a missed pass, or one that ran out of time):
    (id, the first day missing). Rows are written a portfolio at a time (one statement per
    derivation, one per pass), so a gap can only follow a portfolio's last row."""
    _, end = day_bounds(day)
    yesterday = day - timedelta(days=1)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT f.portfolio_id, f.first, d.last
            FROM (
              SELECT portfolio_id, (min(executed_at) AT TIME ZONE 'UTC')::date AS first
              FROM portfolios_transaction WHERE executed_at < %s GROUP BY portfolio_id
            ) f
            LEFT JOIN LATERAL (
              SELECT max(dv.date) AS last FROM performance_dailyvalue dv
              WHERE dv.portfolio_id = f.portfolio_id AND dv.date < %s
            ) d ON true
            """,
            [end, yesterday],
        )
        rows = cursor.fetchall()
    behind = []
    for portfolio_id, first, last in rows:
        since = first if last is None else last + timedelta(days=1)
        if since < yesterday:
            behind.append((portfolio_id, since))
    return behind


def _closes_postgresql(asset_ids: list[int], first: date, last: date) -> dict[int, dict[date, Decimal]]:
    """One index probe per asset and day (history holds a row per quote fetched: reading the
    rows themselves would read thousands a day)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.id, g.day::date, h.price
            FROM unnest(%s::bigint[]) AS a(id)
            CROSS JOIN generate_series(%s::timestamp, %s::timestamp, interval '1 day') AS g(day)
            JOIN LATERAL (
              SELECT ph.price FROM market_pricehistory ph
              WHERE ph.asset_id = a.id AND ph.quoted_at < (g.day + interval '1 day') AT TIME ZONE 'UTC'
              ORDER BY ph.quoted_at DESC LIMIT 1
            ) h ON true
            """,
            [asset_ids, first, last],
        )
        closes: dict[int, dict[date, Decimal]] = {}
        for asset_id, day, price in cursor.fetchall():
            closes.setdefault(asset_id, {})[day] = price
        return closes


def _closes_portable(asset_ids: list[int], first: date, last: date) -> dict[int, dict[date, Decimal]]:
    start, _ = day_bounds(first)
    _, end = day_bounds(last)
    history = PriceHistory.objects.filter(asset_id__in=asset_ids)
    latest = list(
        history.filter(quoted_at__gte=start, quoted_at__lt=end)
        .annotate(day=TruncDate("quoted_at", tzinfo=UTC))
        .values("asset_id", "day")
        .annotate(last=Max("quoted_at"))
        .values_list("asset_id", "last")
    )
    before = history.filter(quoted_at__lt=start).values("asset_id").annotate(last=Max("quoted_at"))
    latest += [(row["asset_id"], row["last"]) for row in before]
    wanted = set(latest)
    by_time: dict[int, list[tuple[datetime, Decimal]]] = {}
    rows = history.filter(quoted_at__in={at for _, at in wanted}).values_list("asset_id", "quoted_at", "price")
    for asset_id, at, close in rows if wanted else ():
        if (asset_id, at) in wanted:
            by_time.setdefault(asset_id, []).append((at, close))
    closes: dict[int, dict[date, Decimal]] = {}
    for asset_id, points in by_time.items():
        points.sort()
        days = closes.setdefault(asset_id, {})
        price: Decimal | None = None
        index, day = 0, first
        while day <= last:
            _, day_end = day_bounds(day)
            while index < len(points) and points[index][0] < day_end:
                price = points[index][1]
                index += 1
            if price is not None:
                days[day] = price
            day += timedelta(days=1)
    return closes


def closes_read(*, asset_ids: Iterable[int], first: date, last: date, today: date) -> dict[int, dict[date, Decimal]]:
    """Each asset's close on each day of [first, last] it has one for; today's is its latest
    quote (the history's last row when it has no quote)."""
    ids = sorted(set(asset_ids))
    if not ids or first > last:
        return {}
    reader = _closes_postgresql if connection.vendor == "postgresql" else _closes_portable
    closes = reader(ids, first, last)
    if first <= today <= last:
        for asset_id, price in Quote.objects.filter(asset_id__in=ids).values_list("asset_id", "price"):
            closes.setdefault(asset_id, {})[today] = price
    return closes


def assets_by_symbol(symbols: Iterable[str]) -> dict[str, int]:
    return dict(Asset.objects.filter(symbol__in=sorted(set(symbols))).values_list("symbol", "id"))
