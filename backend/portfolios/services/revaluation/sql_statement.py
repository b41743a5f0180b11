"""The PostgreSQL revaluation pass of one share of portfolios as ONE statement.

Lock the share's rows in id order, read the moved positions of the portfolios someone hears
about, aggregate their positions with the latest quotes, derive the figures in NUMERIC,
UPDATE only the portfolios whose figures or valued prices changed, record the pass's prices
once (a valuation epoch), mark newly valued positions, insert the snapshots, and RETURN what
was stored: no portfolio row travels through Python just to be compared, and the events are
built from the stored values.

Exactness (the figures of valuation.figures_derive, stored at the model's 10 places, to the
last digit):
- Every product and sum is exact NUMERIC. The aggregation sums ONE product per position,
  `quantity * (price * 10^80 + previous_close * 10^40 + average_cost)`, instead of three:
  the three sums come apart exactly afterwards. Each of them has at most 16 decimals (10 of
  quantity + 6 of a price) and stays under 10^22 in size (a stored figure is under 10^20),
  so `value * 10^80` is a multiple of 10^64 and everything below it is smaller than
  10^64 / 2 in size: round(sum, -64) is exactly `value * 10^80`; likewise round(rest, -24)
  is `previous value * 10^40`. Signs do not matter (rounding, not truncation).
  One NUMERIC multiply and add per position instead of three halves the aggregation's cost.
- Ratios are divided at 60 decimal places, then rounded half-even to the stored 10 with
  tf_round_half_even (migration 0004; PostgreSQL's round() goes half away from zero).
  A ratio of two such sums that is not exactly a tie lies at least 10^-47 away from one,
  so both this and Python's 60-digit Decimal division round to the same 10 places.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from backend.portfolios.sql import bigint_array

from .spans import Share, Span

# The model's storage precision (DecimalField decimal_places=10).
PLACES = 10

# Which portfolios a share is: the ones of a list (that exist), or every portfolio with
# positions in an id span (a Span: the aggregation finds them, no list is sent or hashed into).
_LISTED = {
    "position_members": "AND pos.portfolio_id = ANY(%(ids)s::bigint[])",
    "portfolio_members": "AND id = ANY(%(ids)s::bigint[])",
}
_SPANNED = {
    "position_members": "",
    "portfolio_members": "AND id IN (SELECT portfolio_id FROM sums)",
}

# Arrays are cast to bigint[] (the id columns' type): `bigint = ANY(integer[])` is a
# cross-type comparison PostgreSQL cannot hash, and a 10,000-id filter then costs seconds.
# The share's id span (BETWEEN) goes first: two integer comparisons turn most of another
# share's rows away before the array is hashed into, and a narrow span can use an index.
STATEMENT = """
WITH prices AS NOT MATERIALIZED (
    -- Each asset's latest price and its previous close (none: no change today).
    SELECT asset_id, price, coalesce(previous_close, price) AS previous FROM market_quote
),
sums AS MATERIALIZED (
    -- Materialized CTEs fence each step, so nothing is computed twice and the rounding below
    -- applies to plain columns (and is inlined). Read before the lock, as every CTE, from the
    -- statement's snapshot.
    SELECT portfolio_id, positions, priced, packed, round(packed, -64) AS high
    FROM (
        SELECT pos.portfolio_id,
               sum(pos.quantity * (p.packed + pos.average_cost)) AS packed,
               count(*) AS positions,
               count(p.packed) AS priced
        FROM portfolios_position pos
        LEFT JOIN (SELECT asset_id, price * 1e80 + previous * 1e40 AS packed FROM prices) p
          ON p.asset_id = pos.asset_id
        WHERE pos.portfolio_id BETWEEN %(low)s AND %(high)s {position_members}
        GROUP BY pos.portfolio_id
    ) aggregated
),
heads AS MATERIALIZED (
    -- Locked in id order: two overlapping runs wait for each other instead of the slower one
    -- overwriting newer figures with older ones.
    SELECT id, owner_id, name, total_value, total_cost, daily_change, daily_change_percent,
           total_return, total_return_percent, valued_epoch
    FROM portfolios_portfolio
    WHERE id BETWEEN %(low)s AND %(high)s {portfolio_members}
    ORDER BY id
    FOR NO KEY UPDATE
),
moved AS MATERIALIZED (
    -- The positions of the portfolios someone hears about that are priced at something other
    -- than their previous valuation's price (never valued: no previous price). Read before
    -- this statement replaces the epochs: every CTE sees the same snapshot.
    SELECT pos.id, pos.portfolio_id, a.symbol, pos.quantity, pos.average_cost, vp.price AS last,
           p.price, p.previous
    FROM portfolios_position pos
    JOIN heads h ON h.id = pos.portfolio_id
    JOIN prices p ON p.asset_id = pos.asset_id
    JOIN market_asset a ON a.id = pos.asset_id
    LEFT JOIN portfolios_valuedprice vp
      ON pos.valued AND vp.epoch_id = h.valued_epoch AND vp.asset_id = pos.asset_id
    WHERE (%(everyone)s OR pos.portfolio_id = ANY(%(heard)s::bigint[]))
      AND p.price IS NOT NULL AND vp.price IS DISTINCT FROM p.price
),
split AS MATERIALIZED (
    -- The three exact sums back out of the packed one (16 decimals each: round(.., 16) only
    -- drops the trailing zeros the 10^-80 scaling added).
    SELECT portfolio_id, positions, priced, high, round(packed - high, -24) AS middle, packed - high AS rest
    FROM sums
),
sums3 AS MATERIALIZED (
    -- A portfolio without positions (or with nothing priced) is worth 0.
    SELECT h.*, coalesce(s.positions, 0) AS positions, coalesce(s.priced, 0) AS priced,
           coalesce(round(s.high * 1e-80, 16), 0) AS v,
           coalesce(round(s.middle * 1e-40, 16), 0) AS b,
           coalesce(s.rest - s.middle, 0) AS k
    FROM heads h
    LEFT JOIN split s ON s.portfolio_id = h.id
),
exact AS MATERIALIZED (
    -- value, change = value - previous value, cost; ratios divided at 60 places.
    SELECT t.*, v - b AS c,
           CASE WHEN b = 0 THEN 0 ELSE round((v - b) * 100, 60) / b END AS change_ratio,
           CASE WHEN k = 0 THEN 0 ELSE round((v - k) * 100, 60) / k END AS return_ratio
    FROM sums3 t
),
derived AS (
    SELECT e.*,
           tf_round_half_even(v, %(places)s) AS new_value,
           tf_round_half_even(k, %(places)s) AS new_cost,
           tf_round_half_even(c, %(places)s) AS new_change,
           tf_round_half_even(change_ratio, %(places)s) AS new_change_percent,
           tf_round_half_even(v - k, %(places)s) AS new_return,
           tf_round_half_even(return_ratio, %(places)s) AS new_return_percent
    FROM exact e
),
figures AS MATERIALIZED (
    SELECT d.*,
           (new_value, new_cost, new_change, new_change_percent, new_return, new_return_percent)
             IS DISTINCT FROM (total_value, total_cost, daily_change, daily_change_percent,
                               total_return, total_return_percent) AS figures_changed,
           new_value IS DISTINCT FROM total_value AS value_changed
    FROM derived d
),
moved_assets AS MATERIALIZED (
    -- For the epochs of portfolios whose figures did not change (rare, bar a rerun): the
    -- assets now priced differently from that epoch.
    SELECT e.epoch, p.asset_id
    FROM (SELECT DISTINCT valued_epoch AS epoch FROM figures
          WHERE NOT figures_changed AND valued_epoch IS NOT NULL) e
    CROSS JOIN prices p
    LEFT JOIN portfolios_valuedprice vp ON vp.epoch_id = e.epoch AND vp.asset_id = p.asset_id
    WHERE p.price IS NOT NULL AND vp.price IS DISTINCT FROM p.price
),
fresh AS MATERIALIZED (
    -- Positions never valued, now priced (found through the partial index).
    SELECT pos.id, pos.portfolio_id
    FROM portfolios_position pos
    JOIN prices p ON p.asset_id = pos.asset_id
    WHERE NOT pos.valued AND pos.portfolio_id BETWEEN %(low)s AND %(high)s {position_members}
      AND p.price IS NOT NULL
),
targets AS MATERIALIZED (
    -- Stored: figures changed, or a position is priced for the first time, or a position's
    -- price moved from its previous valuation though the figures (to 10 places) did not.
    SELECT f.*
    FROM figures f
    WHERE f.figures_changed
       OR f.id IN (SELECT portfolio_id FROM fresh)
       OR (EXISTS (SELECT 1 FROM moved_assets)
           AND EXISTS (SELECT 1 FROM portfolios_position pos
                       JOIN moved_assets m ON m.asset_id = pos.asset_id AND m.epoch = f.valued_epoch
                       WHERE pos.portfolio_id = f.id AND pos.valued))
),
epoch AS (
    INSERT INTO portfolios_valuationepoch (created_at)
    SELECT %(now)s WHERE EXISTS (SELECT 1 FROM targets)
    RETURNING id
),
epoch_prices AS (
    INSERT INTO portfolios_valuedprice (epoch_id, asset_id, price)
    SELECT e.id, p.asset_id, p.price FROM epoch e CROSS JOIN prices p WHERE p.price IS NOT NULL
),
updated AS (
    UPDATE portfolios_portfolio AS t
    SET total_value = f.new_value, total_cost = f.new_cost, daily_change = f.new_change,
        daily_change_percent = f.new_change_percent, total_return = f.new_return,
        total_return_percent = f.new_return_percent, valued_at = %(now)s,
        valued_epoch = (SELECT id FROM epoch)
    FROM targets f
    WHERE t.id = f.id
    RETURNING t.id
),
marked AS (
    UPDATE portfolios_position SET valued = true
    WHERE id IN (SELECT id FROM fresh)  -- every fresh position's portfolio is a target
),
snapshots AS (
    INSERT INTO portfolios_portfoliosnapshot (portfolio_id, valued_at, total_value, total_cost, daily_change)
    SELECT id, %(now)s, new_value, new_cost, new_change FROM targets WHERE figures_changed
)
-- The moved positions of those portfolios ('m': position id in the third column, symbol in
-- the fourth, its quantity, average cost, previous valuation's price, price and previous
-- close in the array), the stored rows someone hears about ('p': a full refresh stores
-- 10,000, the others are only counted), then one summary row ('s': revalued, stored, snapshots).
SELECT 'm' AS kind, m.portfolio_id, m.id, m.symbol, NULL::boolean, NULL::boolean, NULL::bigint, NULL::bigint,
       ARRAY[m.quantity, m.average_cost, m.last, m.price, m.previous]
FROM moved m
UNION ALL
SELECT 'p', f.id, f.owner_id, f.name, f.figures_changed, f.value_changed, f.positions, f.priced,
       CASE WHEN %(everyone)s OR f.id = ANY(%(listened)s::bigint[]) THEN
         ARRAY[f.new_value, f.new_cost, f.new_change, f.new_change_percent, f.new_return, f.new_return_percent]
       END
FROM targets f
WHERE %(everyone)s OR f.id = ANY(%(heard)s::bigint[])
UNION ALL
SELECT 's', NULL, (SELECT count(*) FROM heads), NULL, NULL, NULL, count(*), count(*) FILTER (WHERE figures_changed),
       NULL
FROM targets
ORDER BY 1, 2, 4
"""


def share_statement(
    share: Share, *, now: datetime, heard: Collection[int] | None, listened: Collection[int] | None
) -> tuple[str, dict[str, Any]]:
    """The pass's SQL and parameters (the bench EXPLAINs them). `heard`: portfolios whose
    stored rows to return, `listened` (among them): with their figures; None: all."""
    spanned = isinstance(share, Span)
    ids = share.ids if isinstance(share, Span) else share
    params = {
        "ids": "{}" if spanned else bigint_array(ids),
        "low": share.low if isinstance(share, Span) else min(ids, default=0),
        "high": share.high if isinstance(share, Span) else max(ids, default=0),
        "now": now,
        "places": PLACES,
        "everyone": heard is None,
        "heard": bigint_array(sorted(heard or ())),
        "listened": bigint_array(sorted(listened or ())),
    }
    sql = STATEMENT
    for name, text in (_SPANNED if spanned else _LISTED).items():
        sql = sql.replace("{" + name + "}", text)
    return sql, params
