"""Writing daily values (docs/returns.md, "What re-derives when").

- `daily_values_close`: the end-of-day pass (the beat task, hourly): yesterday at its closes
  and today at the latest quotes, for every portfolio in two statements (sql.py); the few
  portfolios whose positions are not their holdings of yesterday (a transaction executed
  since) or whose rows stop earlier (a missed pass) are derived one by one.
- `daily_values_derive`: one portfolio from a day on (a back-dated transaction, a history
  backfill): its ledger replayed in order with the ledger's own formulas (portfolios'
  services/ledger.py), each day valued at that day's closes. Days before the first
  transaction have no row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, timedelta

from django.db import connection, transaction
from django.db.models import Max, Min

from backend.performance.models import DailyValue
from backend.performance.replay import ledger_read, rows_derive
from backend.performance.sql import (
    day_bounds,
    day_close_upsert,
    portfolios_behind,
    portfolios_moved_after,
    utc_today,
)
from backend.portfolios.models import Transaction

FIGURES = ("value", "net_flows", "cost", "realized_gain", "dividends", "fees", "unpriced")


def daily_values_derive(*, portfolio_id: int, since: date, today: date | None = None) -> int:
    """Re-derive the portfolio's rows from `since` through today; returns the rows written.
    A portfolio gone, or without transactions, keeps no rows."""
    today = today or utc_today()
    ledger = ledger_read(portfolio_id)
    stored = DailyValue.objects.filter(portfolio_id=portfolio_id)
    if ledger is None or not ledger.rows:
        stored.delete()
        return 0
    first_day = ledger.rows[0][1]
    since = max(since, first_day)
    rows = rows_derive(portfolio_id, ledger, since, today) if since <= today else []
    with transaction.atomic():
        stored.filter(date__lt=first_day).delete()
        stored.filter(date__gt=today).delete()
        DailyValue.objects.bulk_create(
            rows,
            batch_size=2000,
            update_conflicts=True,
            unique_fields=["portfolio", "date"],
            update_fields=list(FIGURES),
        )
    return len(rows)


@dataclass(frozen=True)
class CloseResult:
    day: date
    rows_closed: int  # yesterday's rows written by the set-based pass
    rows_live: int  # today's
    portfolios_derived: int  # derived one by one
    portfolios_left: int = 0  # to derive one by one, not reached within the budget


def _derive_each(pending: dict[int, date], today: date, budget_seconds: float) -> int:
    deadline = time.monotonic() + budget_seconds
    count = 0
    for portfolio_id, since in sorted(pending.items()):
        if time.monotonic() > deadline:
            break
        daily_values_derive(portfolio_id=portfolio_id, since=since, today=today)
        count += 1
    return count


def _portable_pending(yesterday: date) -> dict[int, date]:
    start, _ = day_bounds(yesterday)
    moved = set(Transaction.objects.filter(executed_at__gte=start).values_list("portfolio_id", flat=True))
    lasts = DailyValue.objects.values("portfolio_id").annotate(last=Max("date"))
    last_rows = dict(lasts.values_list("portfolio_id", "last"))
    firsts = Transaction.objects.values("portfolio_id").annotate(first=Min("executed_at"))
    pending: dict[int, date] = {}
    for portfolio_id, first in firsts.values_list("portfolio_id", "first"):
        last = last_rows.get(portfolio_id)
        since = first.astimezone(UTC).date() if last is None else min(last + timedelta(days=1), yesterday)
        pending[portfolio_id] = min(since, yesterday) if portfolio_id in moved else since
    return pending


def daily_values_close(*, today: date | None = None, budget_seconds: float = 180.0) -> CloseResult:
    """Yesterday's and today's rows of every portfolio (idempotent). The portfolios derived
    one by one stop after about `budget_seconds` (the first pass after install finds every
    portfolio behind): the next pass goes on from where this one stopped."""
    today = today or utc_today()
    yesterday = today - timedelta(days=1)
    if connection.vendor != "postgresql":
        # No set-based statement here (SQLite): every portfolio with a ledger is derived
        # from the day after its last row (at the latest yesterday), or from its first day.
        todo = _portable_pending(yesterday)
        derived = _derive_each(todo, today, budget_seconds)
        return CloseResult(yesterday, 0, 0, derived, len(todo) - derived)
    pending = dict.fromkeys(portfolios_moved_after(day=yesterday), yesterday)
    for portfolio_id, since in portfolios_behind(day=today):
        pending[portfolio_id] = min(since, pending.get(portfolio_id, since))
    with transaction.atomic():
        closed = day_close_upsert(day=yesterday, live=False)
        live = day_close_upsert(day=today, live=True)
    derived = _derive_each(pending, today, budget_seconds)
    return CloseResult(yesterday, closed, live, derived, len(pending) - derived)
