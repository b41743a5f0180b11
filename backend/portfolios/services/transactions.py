"""Recording and deleting transactions: the only writes of a portfolio's positions
(docs/protocol.md, "Transactions"; the formulas are in ledger.py).

Every change holds the portfolio's row lock (SELECT ... FOR NO KEY UPDATE) from before it
reads the ledger until it commits, so concurrent changes to one portfolio apply one after
the other: none is lost and the positions always follow every transaction. Each change then
sends `portfolio_changed` (a revaluation after commit).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import NamedTuple

from django.db import transaction

from backend.market.currency import InvalidCurrency, currencies_equivalent, currency_normalize, pair_symbol
from backend.market.models import Asset
from backend.market.services.tracking import asset_track
from backend.portfolios.models import Portfolio, Transaction
from backend.portfolios.rates import fx_latest
from backend.portfolios.signals import holding_opened, ledger_changed, portfolio_changed

from .ledger import InsufficientQuantity, ledger_totals_store, position_adopt, position_derive, ratio_parse

__all__ = [
    "FxUnavailable",
    "InsufficientQuantity",
    "Recorded",
    "TransactionInput",
    "TransactionInvalid",
    "transaction_buy",
    "transaction_check",
    "transaction_delete",
    "transaction_dividend",
    "transaction_fee",
    "transaction_record",
    "transaction_sell",
    "transaction_split",
]

ZERO = Decimal(0)
TYPES = tuple(Transaction.Type.values)
# Field -> (decimal places, digits) as stored.
LIMITS = {"quantity": (10, 28), "price": (6, 20), "fee": (6, 20), "amount": (6, 24), "fx_rate": (10, 24)}


class TransactionInvalid(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class FxUnavailable(ValueError):
    """No fx_rate given and no rate known yet for the pair."""

    code = "fx_unavailable"


@dataclass(frozen=True)
class TransactionInput:
    type: str
    symbol: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    fee: Decimal | None = None
    amount: Decimal | None = None
    ratio: str = ""
    currency: str | None = None
    fx_rate: Decimal | None = None
    executed_at: datetime | None = None
    external_id: str | None = None


class Recorded(NamedTuple):
    transaction: Transaction
    created: bool  # False: its external_id was recorded before (nothing created)


def _fits(value: Decimal, field: str) -> str | None:
    places, digits = LIMITS[field]
    if not value.is_finite():
        return "must be a number"
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        return f"at most {places} decimal places"
    if abs(value) >= Decimal(10) ** (digits - places):
        return f"at most {digits - places} digits before the point"
    return None


def transaction_check(data: TransactionInput) -> dict[str, str]:
    """The type's rules for its fields: {field: message}, empty when valid."""
    errors: dict[str, str] = {}
    if data.type not in TYPES:
        return {"type": f"must be one of {', '.join(TYPES)}"}
    if data.type != Transaction.Type.FEE and not data.symbol:
        errors["symbol"] = f"required for a {data.type}"
    required = {
        "buy": ("quantity", "price"),
        "sell": ("quantity", "price"),
        "dividend": ("amount",),
        "fee": ("amount",),
    }
    for field in required.get(data.type, ()):
        if getattr(data, field) is None:
            errors[field] = f"required for a {data.type}"
    for field in LIMITS:
        value = getattr(data, field)
        if value is None or field in errors:
            continue
        problem = _fits(value, field)
        if problem is None and field in ("quantity", "amount", "fx_rate") and value <= 0:
            problem = "must be greater than 0"
        if problem is None and field in ("price", "fee") and value < 0:
            problem = "must be greater than or equal to 0"
        if problem:
            errors[field] = problem
    if data.type == Transaction.Type.SPLIT:
        try:
            ratio_parse(data.ratio)
        except ValueError as exc:
            errors["ratio"] = str(exc)
    if data.currency:
        try:
            currency_normalize(data.currency)
        except InvalidCurrency as exc:
            errors["currency"] = str(exc)
    if data.external_id is not None and len(data.external_id) > 100:
        errors["external_id"] = "at most 100 characters"
    return errors


@contextmanager
def portfolio_locked(portfolio: Portfolio) -> Iterator[Portfolio]:
    """A transaction holding the portfolio's row lock; yields the row as locked."""
    with transaction.atomic():
        yield Portfolio.objects.select_for_update(no_key=True).get(pk=portfolio.pk)


def changed(portfolio_id: int, *, since: datetime | None = None, symbols: Collection[str] = ()) -> None:
    """Announce a ledger change; the receivers in tasks/ act once it commits: the
    revaluation (always), the daily values re-derived from `since`'s day (when a
    transaction at that time was written or deleted), a history backfill for `symbols`
    (holdings just written to)."""
    portfolio_changed.send(sender=Portfolio, portfolio_id=portfolio_id)
    if since is not None:
        ledger_changed.send(sender=Portfolio, portfolio_id=portfolio_id, since=since.astimezone(UTC).date())
    if symbols:
        holding_opened.send(sender=Portfolio, portfolio_id=portfolio_id, symbols=sorted(set(symbols)))


def assets_prepare(
    *, portfolio: Portfolio, symbols: Collection[str], currencies: Collection[str] = ()
) -> dict[str, Asset]:
    """The assets of these symbols by symbol (a new one becomes tracked and is fetched at
    once) and the pairs converting their currencies (and `currencies`) into the base
    (tracked the same way), committed on their own: a transaction refused later still
    leaves the rates on their way. Raises InvalidSymbol."""
    with transaction.atomic():
        assets = [asset_track(symbol=symbol) for symbol in sorted(symbols)]
        for currency in {asset.currency for asset in assets} | set(currencies):
            pair_track(currency=currency, base=portfolio.base_currency)
    return {asset.symbol: asset for asset in assets}


def pair_track(*, currency: str, base: str) -> None:
    pair = pair_symbol(currency, base)
    if pair is not None:
        asset_track(symbol=pair)


def currency_resolve(data: TransactionInput, asset: Asset | None, base: str) -> str:
    """The transaction's currency: its asset's (a different one given is refused), or for a
    portfolio-level fee the one given, else the base."""
    if asset is not None:
        if data.currency and not currencies_equivalent(currency_normalize(data.currency), asset.currency):
            raise TransactionInvalid({"currency": f"must be the asset's currency ({asset.currency})"})
        return asset.currency
    return currency_normalize(data.currency) if data.currency else base


def fx_resolve(given: Decimal | None, *, currency: str, base: str) -> Decimal:
    """The fx_rate given, or the latest known rate; FxUnavailable when there is none."""
    if given is not None:
        return given
    rate = fx_latest(currency=currency, base=base)
    if rate is None:
        raise FxUnavailable(f"no {currency}->{base} rate known yet: give fx_rate")
    return rate


def transaction_build(
    *, portfolio: Portfolio, data: TransactionInput, asset: Asset | None, now: datetime
) -> Transaction:
    """The row to insert (fields the type does not use are left empty)."""
    kind = data.type
    currency = currency_resolve(data, asset, portfolio.base_currency)
    trade = kind in (Transaction.Type.BUY, Transaction.Type.SELL)
    return Transaction(
        portfolio=portfolio,
        asset=asset,
        type=kind,
        quantity=data.quantity if trade else None,
        price=data.price if trade else None,
        fee=(data.fee or ZERO) if trade else ZERO,
        amount=data.amount if kind in (Transaction.Type.DIVIDEND, Transaction.Type.FEE) else None,
        ratio=data.ratio if kind == Transaction.Type.SPLIT else "",
        currency=currency,
        fx_rate=fx_resolve(data.fx_rate, currency=currency, base=portfolio.base_currency),
        executed_at=data.executed_at or now,
        external_id=data.external_id or None,
    )


def transaction_record(*, portfolio: Portfolio, data: TransactionInput) -> Recorded:
    """Record one transaction and re-derive its position. Raises TransactionInvalid,
    InvalidSymbol, FxUnavailable or InsufficientQuantity; a refused one changes nothing."""
    errors = transaction_check(data)
    if errors:
        raise TransactionInvalid(errors)
    currencies = {currency_normalize(data.currency)} if data.currency and not data.symbol else set()
    assets = assets_prepare(portfolio=portfolio, symbols={data.symbol} if data.symbol else set(), currencies=currencies)
    asset = next(iter(assets.values()), None)
    now = datetime.now(UTC)
    with portfolio_locked(portfolio) as locked:
        if data.external_id:
            existing = Transaction.objects.filter(portfolio=locked, external_id=data.external_id).first()
            if existing is not None:
                return Recorded(existing, False)
        if asset is not None:
            position_adopt(portfolio=locked, asset_id=asset.pk, now=now)
        row = transaction_build(portfolio=locked, data=data, asset=asset, now=now)
        row.save()
        if asset is not None and row.type != Transaction.Type.FEE:
            position_derive(portfolio=locked, asset_id=asset.pk, appended=row)
        ledger_totals_store(portfolio=locked)
        held = [asset.symbol] if asset is not None and row.type != Transaction.Type.FEE else []
        changed(locked.pk, since=row.executed_at, symbols=held)
    return Recorded(row, True)


def transaction_delete(*, transaction_row: Transaction) -> None:
    """Delete a transaction and re-derive its position; InsufficientQuantity (nothing
    changes) when a later sell would no longer be covered."""
    with portfolio_locked(transaction_row.portfolio) as locked:
        asset_id, executed_at = transaction_row.asset_id, transaction_row.executed_at
        transaction_row.delete()
        if asset_id is not None:
            position_derive(portfolio=locked, asset_id=asset_id)
        ledger_totals_store(portfolio=locked)
        changed(locked.pk, since=executed_at)


def _typed(kind: str, portfolio: Portfolio, **fields: object) -> Recorded:
    return transaction_record(portfolio=portfolio, data=TransactionInput(type=kind, **fields))  # type: ignore[arg-type]


def transaction_buy(
    *, portfolio: Portfolio, symbol: str, quantity: Decimal, price: Decimal, **extra: object
) -> Recorded:
    """quantity += q; cost += (q * price + fee) * fx_rate. extra: fee, currency, fx_rate,
    executed_at, external_id."""
    return _typed("buy", portfolio, symbol=symbol, quantity=quantity, price=price, **extra)


def transaction_sell(
    *, portfolio: Portfolio, symbol: str, quantity: Decimal, price: Decimal, **extra: object
) -> Recorded:
    """realized_gain += (q * price - fee) * fx_rate - q * cost / quantity; cost and
    quantity fall in proportion. More than held at executed_at: InsufficientQuantity."""
    return _typed("sell", portfolio, symbol=symbol, quantity=quantity, price=price, **extra)


def transaction_dividend(*, portfolio: Portfolio, symbol: str, amount: Decimal, **extra: object) -> Recorded:
    """dividends += amount * fx_rate (cash received, in the asset's currency)."""
    return _typed("dividend", portfolio, symbol=symbol, amount=amount, **extra)


def transaction_split(*, portfolio: Portfolio, symbol: str, ratio: str, **extra: object) -> Recorded:
    """quantity *= N / M for "N:M"; cost unchanged."""
    return _typed("split", portfolio, symbol=symbol, ratio=ratio, **extra)


def transaction_fee(*, portfolio: Portfolio, amount: Decimal, symbol: str | None = None, **extra: object) -> Recorded:
    """fees += amount * fx_rate (the portfolio's; `symbol` only labels it)."""
    return _typed("fee", portfolio, symbol=symbol, amount=amount, **extra)
