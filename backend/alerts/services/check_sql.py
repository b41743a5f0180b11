"""The PostgreSQL check: ONE statement per batch, whatever the number of alerts.

The batch's quotes are unnested and joined to their assets. One branch per condition joins
them to the active alerts of that condition: an index range on the threshold (against the
price or the change percent) finds the armed alerts a quote satisfies (`fire`, index
alert_fire_lookup) and the disarmed ones it no longer satisfies (`rearm`, index
alert_rearm_lookup); every other alert is not read.

Both sets are locked in id order first (`locked`), so two checks of the same symbol (two
workers storing the same quote) never deadlock. The UPDATEs re-check their conditions on
the row as it is then (PostgreSQL re-reads a row another transaction changed meanwhile), so
the second of two concurrent checks finds the alert fired already and does nothing; the
firing's INSERT is also unique per (alert, quote time) with ON CONFLICT DO NOTHING, and
only inserted rows are returned. A quote older than the one that last changed the alert's
state (`state_at`) changes nothing.
"""

from __future__ import annotations

from functools import lru_cache

from backend.alerts.models import Alert, AlertEvent
from backend.market.models import Asset

# One branch per condition: the condition is a constant, so each lookup is an index range
# (asset = the quote's, condition = the branch's, threshold <= or >= the compared value).
_MATCH = """
    SELECT al.id, q.symbol, q.price, q.change_percent, q.quoted_at, q.{column} AS value, {up} AS up
    FROM q JOIN {alert} al ON al.asset_id = q.asset_id AND al.condition = '{condition}'
    WHERE al.active AND {armed}al.armed AND al.threshold {op} q.{column}
      AND (al.state_at IS NULL OR al.state_at < q.quoted_at)"""

# condition -> the value it compares and whether it fires upwards (threshold <= value).
_CONDITIONS = {
    "above": ("price", True),
    "below": ("price", False),
    "change_percent_above": ("change_percent", True),
    "change_percent_below": ("change_percent", False),
}


PREPARED_NAME = "tf_alerts_check"
PARAMETER_TYPES = "varchar[], numeric[], numeric[], timestamptz[]"


@lru_cache(maxsize=1)
def check_prepare_sql() -> str:
    """PREPARE the statement once per connection: planning it took about as long as running it."""
    return f"PREPARE {PREPARED_NAME} ({PARAMETER_TYPES}) AS {check_sql()}"


@lru_cache(maxsize=1)
def check_inline_sql() -> str:
    """The statement with %s parameters, for a connection inside a transaction (not prepared:
    a failed EXECUTE there would abort the caller's transaction)."""
    sql = check_sql()
    for n in range(1, 5):
        sql = sql.replace(f"${n}::", "%s::")
    return sql


EXECUTE_SQL = f"EXECUTE {PREPARED_NAME} (%s::varchar[], %s::numeric[], %s::numeric[], %s::timestamptz[])"


@lru_cache(maxsize=1)
def check_sql() -> str:
    """The statement, with its parameters as $1-$4 (symbols, prices, change percents, quote times)."""
    alert, event, asset = Alert._meta.db_table, AlertEvent._meta.db_table, Asset._meta.db_table

    def matches(*, fire: bool) -> str:
        # Fire: up and threshold <= value, or down and threshold >= value. Re-arm: the
        # opposite, strictly, of an alert that fired.
        branches = []
        for condition, (column, up) in _CONDITIONS.items():
            op = ("<=" if up else ">=") if fire else (">" if up else "<")
            armed = "" if fire else "NOT "
            branches.append(
                _MATCH.format(alert=alert, column=column, up=str(up).lower(), condition=condition, armed=armed, op=op)
            )
        return "\n    UNION ALL".join(branches)

    return f"""
WITH q AS MATERIALIZED (
    SELECT a.id AS asset_id, s.symbol, s.price, s.change_percent, s.quoted_at
    FROM unnest($1::varchar[], $2::numeric[], $3::numeric[], $4::timestamptz[])
        AS s (symbol, price, change_percent, quoted_at)
    -- One index probe per quote; OFFSET 0 keeps the planner from turning it into a join that
    -- reads every asset to hash them.
    CROSS JOIN LATERAL (SELECT id FROM {asset} WHERE symbol = s.symbol OFFSET 0) a
),
fire AS ({matches(fire=True)}
),
rearm AS ({matches(fire=False)}
),
locked AS MATERIALIZED (
    SELECT al.id FROM {alert} al
    WHERE al.id IN (SELECT id FROM fire UNION ALL SELECT id FROM rearm)
    ORDER BY al.id
    FOR UPDATE OF al
),
spent AS (
    UPDATE {alert} al SET armed = false, active = (al.repeat = 'rearm'), state_at = f.quoted_at
    FROM fire f
    WHERE al.id = f.id AND (SELECT count(*) FROM locked) >= 0
      AND al.active AND al.armed AND (al.state_at IS NULL OR al.state_at < f.quoted_at)
      AND CASE WHEN f.up THEN al.threshold <= f.value ELSE al.threshold >= f.value END
    RETURNING al.id, al.owner_id, al.condition, al.threshold, f.symbol, f.price, f.change_percent, f.quoted_at
),
fired AS (
    INSERT INTO {event} (alert_id, owner_id, condition, threshold, price, change_percent, quoted_at, triggered_at)
    SELECT id, owner_id, condition, threshold, price, change_percent, quoted_at, now() FROM spent
    ON CONFLICT (alert_id, quoted_at) DO NOTHING
    RETURNING id, alert_id, triggered_at
),
rearmed AS (
    UPDATE {alert} al SET armed = true, state_at = r.quoted_at
    FROM rearm r
    WHERE al.id = r.id AND (SELECT count(*) FROM locked) >= 0
      AND al.active AND NOT al.armed AND (al.state_at IS NULL OR al.state_at < r.quoted_at)
      AND CASE WHEN r.up THEN al.threshold > r.value ELSE al.threshold < r.value END
    RETURNING al.id
)
SELECT f.id, s.id, s.owner_id, s.symbol, s.condition, s.threshold, s.price, s.change_percent, s.quoted_at,
       f.triggered_at
FROM fired f JOIN spent s ON s.id = f.alert_id
ORDER BY f.id
"""  # noqa: S608 (table names from model meta)
