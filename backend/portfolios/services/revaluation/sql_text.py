"""The text of the PostgreSQL pass's one statement (sql_statement.py explains it and fills
in its parameters)."""

from __future__ import annotations

from backend.market.currency import sql_factor_case, sql_major_case

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
    -- Per portfolio and asset currency, open positions only (a closed one still makes its
    -- portfolio a member of a span). Materialized CTEs fence each step; every CTE reads the
    -- statement's snapshot.
    SELECT portfolio_id, currency, positions, priced, packed, round(packed, -64) AS high
    FROM (
        SELECT pos.portfolio_id, a.currency,
               sum(pos.quantity * p.packed + coalesce(pos.cost_basis, pos.quantity * pos.average_cost))
                 FILTER (WHERE pos.quantity > 0) AS packed,
               count(*) FILTER (WHERE pos.quantity > 0) AS positions,
               count(p.packed) FILTER (WHERE pos.quantity > 0) AS priced
        FROM portfolios_position pos
        JOIN market_asset a ON a.id = pos.asset_id
        LEFT JOIN (SELECT asset_id, price * 1e80 + previous * 1e40 AS packed FROM prices) p
          ON p.asset_id = pos.asset_id
        WHERE pos.portfolio_id BETWEEN %(low)s AND %(high)s {position_members}
        GROUP BY pos.portfolio_id, a.currency
    ) aggregated
),
heads AS MATERIALIZED (
    -- Locked in id order: two overlapping runs wait for each other instead of the slower one
    -- overwriting newer figures with older ones.
    SELECT id, owner_id, name, base_currency, upper(base_currency) AS base, realized_gain, dividends, fees,
           total_value, total_cost, daily_change, daily_change_percent, total_return, total_return_percent,
           valued_epoch
    FROM portfolios_portfolio
    WHERE id BETWEEN %(low)s AND %(high)s {portfolio_members}
    ORDER BY id
    FOR NO KEY UPDATE
),
rates AS MATERIALIZED (
    -- Base units per unit of each asset currency held here, now and at the pair's previous
    -- close (NULL: the pair has no quote yet); no pair needed: the unit's factor (1, 0.01).
    SELECT c.currency, c.base, c.factor, pa.id AS pair_id,
           CASE WHEN c.major = c.base THEN c.factor ELSE q.price * c.factor END AS fx,
           CASE WHEN c.major = c.base THEN c.factor ELSE q.previous * c.factor END AS fx_previous
    FROM (SELECT DISTINCT s.currency, h.base, {major} AS major, {factor} AS factor
          FROM sums s JOIN heads h ON h.id = s.portfolio_id) c
    LEFT JOIN market_asset pa ON c.major <> c.base AND pa.symbol = c.major || c.base || '=X'
    LEFT JOIN prices q ON q.asset_id = pa.id
),
moved AS MATERIALIZED (
    -- The open, priced positions of the portfolios someone hears about whose price or rate
    -- differs from their previous valuation's (never valued: none). Read before this
    -- statement replaces the epochs.
    SELECT * FROM (
        SELECT pos.id, pos.portfolio_id, a.symbol, a.currency, pos.quantity, pos.average_cost,
               coalesce(pos.cost_basis, pos.quantity * pos.average_cost) AS cost, pos.realized_gain,
               pos.dividends, vp.price AS last, p.price, p.previous, r.fx, r.fx_previous,
               CASE WHEN NOT pos.valued THEN NULL WHEN r.pair_id IS NULL THEN r.factor
                    ELSE vr.price * r.factor END AS last_fx
        FROM portfolios_position pos
        JOIN heads h ON h.id = pos.portfolio_id
        JOIN prices p ON p.asset_id = pos.asset_id
        JOIN market_asset a ON a.id = pos.asset_id
        JOIN rates r ON r.currency = a.currency AND r.base = h.base AND r.fx IS NOT NULL
        LEFT JOIN portfolios_valuedprice vp
          ON pos.valued AND vp.epoch_id = h.valued_epoch AND vp.asset_id = pos.asset_id
        LEFT JOIN portfolios_valuedprice vr
          ON pos.valued AND vr.epoch_id = h.valued_epoch AND vr.asset_id = r.pair_id
        WHERE (%(everyone)s OR pos.portfolio_id = ANY(%(heard)s::bigint[])) AND pos.quantity > 0
    ) candidates
    WHERE last IS DISTINCT FROM price OR last_fx IS DISTINCT FROM fx
),
split AS MATERIALIZED (
    -- The three exact sums back out of the packed one, with the group's rate.
    SELECT s.portfolio_id, s.positions, s.priced, r.fx, r.fx_previous, round(s.high * 1e-80, 16) AS v,
           round(round(s.packed - s.high, -24) * 1e-40, 16) AS b,
           (s.packed - s.high) - round(s.packed - s.high, -24) AS k
    FROM sums s
    JOIN heads h ON h.id = s.portfolio_id
    LEFT JOIN rates r ON r.currency = s.currency AND r.base = h.base
),
converted AS MATERIALIZED (
    -- In the base currency; a group without a rate is left out and counted unpriced.
    SELECT portfolio_id, sum(positions)::bigint AS positions,
           coalesce(sum(priced) FILTER (WHERE fx IS NOT NULL), 0)::bigint AS priced,
           sum(v * fx) AS v, sum(b * fx_previous) AS b, sum(k) FILTER (WHERE fx IS NOT NULL) AS k
    FROM split
    GROUP BY portfolio_id
),
exact AS MATERIALIZED (
    -- A portfolio without positions (or with nothing priced) is worth 0. value, change =
    -- value - previous value, cost, return (with the ledger's); ratios divided at 60 places.
    SELECT t.*, v - b AS c, v - k + ledger AS r,
           CASE WHEN b = 0 THEN 0 ELSE round((v - b) * 100, 60) / b END AS change_ratio,
           CASE WHEN k = 0 THEN 0 ELSE round((v - k + ledger) * 100, 60) / k END AS return_ratio
    FROM (
        SELECT h.*, coalesce(c.positions, 0) AS positions, coalesce(c.priced, 0) AS priced,
               coalesce(c.v, 0) AS v, coalesce(c.b, 0) AS b, coalesce(c.k, 0) AS k,
               h.realized_gain + h.dividends - h.fees AS ledger
        FROM heads h
        LEFT JOIN converted c ON c.portfolio_id = h.id
    ) t
),
derived AS (
    SELECT e.*,
           tf_round_half_even(v, %(places)s) AS new_value,
           tf_round_half_even(k, %(places)s) AS new_cost,
           tf_round_half_even(c, %(places)s) AS new_change,
           tf_round_half_even(change_ratio, %(places)s) AS new_change_percent,
           tf_round_half_even(r, %(places)s) AS new_return,
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
    -- assets (pairs too) now priced differently from that epoch.
    SELECT e.epoch, p.asset_id
    FROM (SELECT DISTINCT valued_epoch AS epoch FROM figures
          WHERE NOT figures_changed AND valued_epoch IS NOT NULL) e
    CROSS JOIN prices p
    LEFT JOIN portfolios_valuedprice vp ON vp.epoch_id = e.epoch AND vp.asset_id = p.asset_id
    WHERE p.price IS NOT NULL AND vp.price IS DISTINCT FROM p.price
),
fresh AS MATERIALIZED (
    -- Open positions never valued, now priced (quote and rate; through the partial index).
    SELECT pos.id, pos.portfolio_id
    FROM portfolios_position pos
    JOIN heads h ON h.id = pos.portfolio_id
    JOIN prices p ON p.asset_id = pos.asset_id
    JOIN market_asset a ON a.id = pos.asset_id
    JOIN rates r ON r.currency = a.currency AND r.base = h.base AND r.fx IS NOT NULL
    WHERE NOT pos.valued AND pos.quantity > 0
      AND pos.portfolio_id BETWEEN %(low)s AND %(high)s {position_members}
),
targets AS MATERIALIZED (
    -- Stored: figures changed, or a position is priced for the first time, or a position's
    -- price or rate moved from its previous valuation though the figures (to 10 places) did not.
    SELECT f.*
    FROM figures f
    WHERE f.figures_changed
       OR f.id IN (SELECT portfolio_id FROM fresh)
       OR (EXISTS (SELECT 1 FROM moved_assets)
           AND EXISTS (SELECT 1 FROM portfolios_position pos
                       JOIN prices p ON p.asset_id = pos.asset_id
                       JOIN market_asset a ON a.id = pos.asset_id
                       JOIN rates r ON r.currency = a.currency AND r.base = f.base AND r.fx IS NOT NULL
                       JOIN moved_assets m ON m.epoch = f.valued_epoch AND m.asset_id IN (pos.asset_id, r.pair_id)
                       WHERE pos.portfolio_id = f.id AND pos.valued AND pos.quantity > 0))
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
-- The moved positions ('m': position id in the third column, symbol and currency next, the
-- numbers in the array), the stored rows someone hears about ('p': base currency in the fifth
-- column; a full refresh stores 10,000, the others are only counted), then one summary row
-- ('s': revalued, stored, snapshots).
SELECT 'm' AS kind, m.portfolio_id, m.id, m.symbol, m.currency, NULL::boolean, NULL::boolean, NULL::bigint,
       NULL::bigint, ARRAY[m.quantity, m.average_cost, m.cost, m.realized_gain, m.dividends, m.last, m.price,
                           m.previous, m.fx, m.fx_previous, m.last_fx]
FROM moved m
UNION ALL
SELECT 'p', f.id, f.owner_id, f.name, f.base_currency, f.figures_changed, f.value_changed, f.positions, f.priced,
       CASE WHEN %(everyone)s OR f.id = ANY(%(listened)s::bigint[]) THEN
         ARRAY[f.new_value, f.new_cost, f.new_change, f.new_change_percent, f.new_return, f.new_return_percent,
               f.realized_gain, f.dividends, f.fees]
       END
FROM targets f
WHERE %(everyone)s OR f.id = ANY(%(heard)s::bigint[])
UNION ALL
SELECT 's', NULL, (SELECT count(*) FROM heads), NULL, NULL, NULL, NULL, count(*),
       count(*) FILTER (WHERE figures_changed), NULL
FROM targets
ORDER BY 1, 2, 4
"""
STATEMENT = STATEMENT.replace("{major}", sql_major_case("s.currency")).replace(
    "{factor}", sql_factor_case("s.currency")
)
