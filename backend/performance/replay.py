"""Replaying a portfolio's ledger day by day (docs/returns.md, "Daily values"): its
transactions applied in order with the ledger's own formulas (portfolios'
services/ledger.py), each day's holdings valued at that day's closes and pair closes.
`daily_values_derive` stores what this returns; the selectors value today with it where
the set-based statement (sql.py) does not run (SQLite)."""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from decimal import Decimal

from backend.market.currency import currency_major, pair_symbol
from backend.market.models import Asset
from backend.performance.models import DailyValue
from backend.performance.sql import assets_by_symbol, closes_read
from backend.portfolios.models import Portfolio, Transaction
from backend.portfolios.services.ledger import ENTRY_FIELDS, Entry, Holding, entry_apply, fee_of

ZERO = Decimal(0)
PLACES = Decimal("1e-10")


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
class Ledger:
    base: str
    rows: list[tuple[int | None, date, Entry]]  # asset, UTC day, entry; in the order they apply
    currencies: dict[int, str]  # asset -> its currency


def ledger_read(portfolio_id: int) -> Ledger | None:
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
    return Ledger(base, rows, currencies)


class _Valuer:
    """Values holdings at a day's closes and pair closes."""

    def __init__(self, ledger: Ledger, first: date, last: date, today: date) -> None:
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


def rows_derive(portfolio_id: int, ledger: Ledger, since: date, today: date) -> list[DailyValue]:
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
