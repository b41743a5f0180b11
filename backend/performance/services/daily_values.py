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

import decimal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from decimal import Decimal

from django.db import connection, transaction

from backend.market.currency import currency_major, pair_symbol
from backend.market.models import Asset
from backend.performance.models import DailyValue
from backend.performance.sql import (
    assets_by_symbol,
    closes_read,
    day_bounds,
    day_close_upsert,
    portfolios_behind,
    portfolios_moved_after,
    utc_today,
)
from backend.portfolios.models import Portfolio, Transaction
from backend.portfolios.services.ledger import ENTRY_FIELDS, Entry, Holding, entry_apply, fee_of

ZERO = Decimal(0)
PLACES = Decimal("1e-10")
FIGURES = ("value", "net_flows", "cost", "realized_gain", "dividends", "fees", "unpriced")


def _money(value: Decimal) -> Decimal:
    return value.quantize(PLACES, rounding=decimal.ROUND_HALF_EVEN)


def flow_of(entry: Entry) -> Decimal:
    """Money into the holdings (+) or out of them (-), base currency; fees inside."""
    kind, fx = entry.type, entry.fx_rate
    if kind == Transaction.Type.BUY:
        return (entry.quantity or ZERO) * (entry.price or ZERO) * fx + entry.fee * fx
    if kind == Transaction.Type.SELL:
        return -((entry.quantity or ZERO) * (entry.price or ZERO) - entry.fee) * fx
    if kind == Transaction.Type.DIVIDEND:
        return -(entry.amount or ZERO) * fx
    if kind == Transaction.Type.FEE:
        return (entry.amount or ZERO) * fx
    return ZERO  # a split


@dataclass(frozen=True)
class _Ledger:
    base: str
    rows: list[tuple[int | None, date, Entry]]  # asset, UTC day, entry; in the order they apply
    currencies: dict[int, str]  # asset -> its currency


def _ledger(portfolio_id: int) -> _Ledger | None:
    base = Portfolio.objects.filter(pk=portfolio_id).values_list("base_currency", flat=True).first()
    if base is None:
        return None
    raw = (
        Transaction.objects.filter(portfolio_id=portfolio_id)
        .order_by("executed_at", "pk")
        .values_list("asset_id", "executed_at", *ENTRY_FIELDS)
    )
    rows = [(asset_id, at.astimezone(UTC).date(), Entry(*rest)) for asset_id, at, *rest in raw]
    asset_ids = {asset_id for asset_id, _, _ in rows if asset_id is not None}
    currencies = dict(Asset.objects.filter(pk__in=asset_ids).values_list("pk", "currency"))
    return _Ledger(base, rows, currencies)


class _Valuer:
    """Values holdings at a day's closes and pair closes."""

    def __init__(self, ledger: _Ledger, first: date, last: date, today: date) -> None:
        self.pairs = {asset: pair_symbol(currency, ledger.base) for asset, currency in ledger.currencies.items()}
        self.factors = {asset: currency_major(currency).factor for asset, currency in ledger.currencies.items()}
        pair_ids = assets_by_symbol(pair for pair in self.pairs.values() if pair is not None)
        self.pair_ids = pair_ids
        ids = [*ledger.currencies, *pair_ids.values()]
        self.closes = closes_read(asset_ids=ids, first=first, last=last, today=today)

    def price(self, asset_id: int, day: date) -> Decimal | None:
        """One unit of the asset in the base currency at the day's close (None: unknown)."""
        close = self.closes.get(asset_id, {}).get(day)
        if close is None:
            return None
        pair = self.pairs.get(asset_id)
        if pair is None:
            return close * self.factors[asset_id]
        pair_id = self.pair_ids.get(pair)
        fx = None if pair_id is None else self.closes.get(pair_id, {}).get(day)
        return None if fx is None else close * fx * self.factors[asset_id]


def _days(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _derived_rows(portfolio_id: int, ledger: _Ledger, since: date, today: date) -> list[DailyValue]:
    holdings: dict[int, Holding] = {}
    fees = ZERO
    valuer = _Valuer(ledger, since, today, today)
    rows: list[DailyValue] = []
    index, count = 0, len(ledger.rows)
    for day in _days(since, today):
        flows = ZERO
        while index < count and ledger.rows[index][1] <= day:
            asset_id, applied_on, entry = ledger.rows[index]
            index += 1
            if applied_on == day:
                flows += flow_of(entry)
            if entry.type == Transaction.Type.FEE:
                fees += fee_of(entry.amount, entry.fx_rate)
            elif asset_id is not None:
                holdings[asset_id] = entry_apply(holdings.get(asset_id, Holding()), entry)
        value, unpriced = ZERO, 0
        for asset_id, holding in holdings.items():
            if holding.quantity <= 0:
                continue
            price = valuer.price(asset_id, day)
            if price is None:
                unpriced += 1
            else:
                value += holding.quantity * price
        rows.append(
            DailyValue(
                portfolio_id=portfolio_id,
                date=day,
                value=_money(value),
                net_flows=_money(flows),
                cost=_money(sum((h.cost for h in holdings.values()), ZERO)),
                realized_gain=_money(sum((h.realized_gain for h in holdings.values()), ZERO)),
                dividends=_money(sum((h.dividends for h in holdings.values()), ZERO)),
                fees=_money(fees),
                unpriced=unpriced,
            )
        )
    return rows


def daily_values_derive(*, portfolio_id: int, since: date, today: date | None = None) -> int:
    """Re-derive the portfolio's rows from `since` through today; returns the rows written.
    A portfolio gone, or without transactions, keeps no rows."""
    today = today or utc_today()
    ledger = _ledger(portfolio_id)
    stored = DailyValue.objects.filter(portfolio_id=portfolio_id)
    if ledger is None or not ledger.rows:
        stored.delete()
        return 0
    first_day = ledger.rows[0][1]
    since = max(since, first_day)
    rows = _derived_rows(portfolio_id, ledger, since, today) if since <= today else []
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


def daily_values_close(*, today: date | None = None, budget_seconds: float = 180.0) -> CloseResult:
    """Yesterday's and today's rows of every portfolio (idempotent). The portfolios derived
    one by one stop after about `budget_seconds` (the first pass after install finds every
    portfolio behind): the next pass goes on from where this one stopped."""
    today = today or utc_today()
    yesterday = today - timedelta(days=1)
    if connection.vendor != "postgresql":
        start, _ = day_bounds(yesterday)
        ids = Transaction.objects.filter(executed_at__gte=start).values_list("portfolio_id", flat=True).distinct()
        ids_all = set(ids) | set(DailyValue.objects.values_list("portfolio_id", flat=True).distinct())
        todo = dict.fromkeys(ids_all, yesterday)
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
