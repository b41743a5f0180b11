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
bases AS MATERIALIZED (
    -- The base currencies of the share's portfolios, numbered: a row or two.
    SELECT base_currency, row_number() OVER (ORDER BY base_currency) AS base_no
    FROM (SELECT DISTINCT base_currency FROM portfolios_portfolio
          WHERE id BETWEEN %(low)s AND %(high)s {base_members}) b
),
rates AS MATERIALIZED (
    -- Units of each base per unit of each asset currency, now and at the pair's previous close
    -- (NULL: the pair has no quote yet); no pair needed: the unit's factor (1, 0.01). Computed
    -- once per currency and base, a handful of rows.
    SELECT c.currency, c.base_currency, c.base_no, c.factor, pa.id AS pair_id,
           CASE WHEN c.major = c.base THEN c.factor ELSE q.price * c.factor END AS fx,
           CASE WHEN c.major = c.base THEN c.factor ELSE q.previous * c.factor END AS fx_previous
    FROM (SELECT s.currency, b.base_currency, b.base_no, upper(b.base_currency) AS base,
                 {major} AS major, {factor} AS factor
          FROM (SELECT DISTINCT currency FROM market_asset) s CROSS JOIN bases b) c
    LEFT JOIN market_asset pa ON c.major <> c.base AND pa.symbol = c.major || c.base || '=X'
    LEFT JOIN prices q ON q.asset_id = pa.id
),
units AS (
    -- Each asset's price and previous close converted into each base, packed as the
    -- aggregation sums them (sql_statement.py): once per asset, not per position. NULL: no
    -- quote or no rate yet. OFFSET 0 keeps it a subquery the planner hashes (it knows
    -- asset_id is unique per base), not a per-position expression.
    SELECT a.id AS asset_id, r.base_no, p.price * r.fx * 1e100 + p.previous * r.fx_previous * 1e50 AS packed
    FROM market_asset a
    JOIN rates r ON r.currency = a.currency
    LEFT JOIN prices p ON p.asset_id = a.id
    OFFSET 0
),
sums AS MATERIALIZED (
    -- Per portfolio, its open positions in each base of the share: ONE packed sum each (a
    -- closed position still makes its portfolio a member of a span). No join to the portfolios
    -- per position: the portfolio's own base is picked from these rows afterwards. Materialized
    -- CTEs fence each step; every CTE reads the statement's snapshot.
    SELECT portfolio_id, base_no, positions, priced, packed, round(packed, -76) AS high
    FROM (
        SELECT pos.portfolio_id, u.base_no,
               sum(pos.quantity * u.packed + coalesce(pos.cost_basis, pos.quantity * pos.average_cost))
                 FILTER (WHERE pos.quantity > 0) AS packed,
               count(*) FILTER (WHERE pos.quantity > 0) AS positions,
               count(u.packed) FILTER (WHERE pos.quantity > 0) AS priced
        FROM portfolios_position pos
        JOIN units u ON u.asset_id = pos.asset_id
        WHERE pos.portfolio_id BETWEEN %(low)s AND %(high)s {position_members}
        GROUP BY pos.portfolio_id, u.base_no
    ) aggregated
),
heads AS MATERIALIZED (
    -- Locked in id order: two overlapping runs wait for each other instead of the slower one
    -- overwriting newer figures with older ones.
    SELECT id, owner_id, name, base_currency, realized_gain, dividends, fees,
           total_value, total_cost, daily_change, daily_change_percent, total_return, total_return_percent,
           valued_epoch
    FROM portfolios_portfolio
    WHERE id BETWEEN %(low)s AND %(high)s {portfolio_members}
    ORDER BY id
    FOR NO KEY UPDATE
),
valued_pairs AS MATERIALIZED (
    -- The pairs' prices in the previous valuations of these portfolios (the rates those used):
    -- a few rows, so joining them per moved position is cheap whatever plan is chosen.
    SELECT v.epoch_id, v.asset_id, v.price
    FROM portfolios_valuedprice v
    WHERE v.epoch_id IN (SELECT valued_epoch FROM heads) AND v.asset_id IN (SELECT pair_id FROM rates)
),
heard AS MATERIALIZED (
    -- The open positions of the portfolios someone hears about, found first: joined from the
    -- small CTEs instead, the planner (which knows nothing of their values) probed the
    -- positions once per portfolio and currency.
    SELECT pos.id, pos.portfolio_id, pos.asset_id, pos.quantity, pos.average_cost, pos.cost_basis,
           pos.realized_gain, pos.dividends, pos.valued
    FROM portfolios_position pos
    WHERE pos.portfolio_id BETWEEN %(low)s AND %(high)s {position_members} AND pos.quantity > 0
      AND (%(everyone)s OR pos.portfolio_id = ANY(%(heard)s::bigint[]))
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
        FROM heard pos
        JOIN heads h ON h.id = pos.portfolio_id
        JOIN prices p ON p.asset_id = pos.asset_id
        JOIN market_asset a ON a.id = pos.asset_id
        JOIN rates r ON r.currency = a.currency AND r.base_currency = h.base_currency AND r.fx IS NOT NULL
        LEFT JOIN portfolios_valuedprice vp
          ON pos.valued AND vp.epoch_id = h.valued_epoch AND vp.asset_id = pos.asset_id
        LEFT JOIN valued_pairs vr ON pos.valued AND vr.epoch_id = h.valued_epoch AND vr.asset_id = r.pair_id
    ) candidates
    WHERE last IS DISTINCT FROM price OR last_fx IS DISTINCT FROM fx
),
split AS MATERIALIZED (
    -- The three exact sums back out of the packed one (24 decimals each at most).
    SELECT portfolio_id, base_no, positions, priced, high, round(packed - high, -26) AS middle, packed - high AS rest
    FROM sums
),
exact AS MATERIALIZED (
    -- In the portfolio's base; without open positions (or with nothing priced) it is worth 0.
    -- value, change = value - previous value, cost, return (with the ledger's); ratios divided
    -- at 60 places. (A base another transaction gave a portfolio after this statement's
    -- snapshot is not among the bases: that portfolio is left to the next pass.)
    SELECT t.*, v - b AS c, v - k + ledger AS r,
           CASE WHEN b = 0 THEN 0 ELSE round((v - b) * 100, 60) / b END AS change_ratio,
           CASE WHEN k = 0 THEN 0 ELSE round((v - k + ledger) * 100, 60) / k END AS return_ratio
    FROM (
        SELECT h.*, coalesce(s.positions, 0) AS positions, coalesce(s.priced, 0) AS priced,
               coalesce(round(s.high * 1e-100, 24), 0) AS v,
               coalesce(round(s.middle * 1e-50, 24), 0) AS b,
               coalesce(s.rest - s.middle, 0) AS k,
               h.realized_gain + h.dividends - h.fees AS ledger
        FROM heads h
        JOIN bases bs ON bs.base_currency = h.base_currency
        LEFT JOIN split s ON s.portfolio_id = h.id AND s.base_no = bs.base_no
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
    JOIN rates r ON r.currency = a.currency AND r.base_currency = h.base_currency AND r.fx IS NOT NULL
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
                       JOIN rates r
                         ON r.currency = a.currency AND r.base_currency = f.base_currency AND r.fx IS NOT NULL
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
