"""Positions derived from the ledger (docs/protocol.md, "Transactions").

A position is its asset's transactions applied in `executed_at` order (ties by id), each by
the formula of its type, in Decimal (all money in the base currency unless said):
- buy:      quantity += q; cost += (q * price + fee) * fx_rate
- sell:     q <= quantity held, else InsufficientQuantity; share = cost * q / quantity;
            realized_gain += (q * price - fee) * fx_rate - share; cost -= share; quantity -= q
- dividend: dividends += amount * fx_rate
- split:    quantity *= N / M ("N:M": N new shares for M old); cost unchanged
- fee:      the portfolio's fees += amount * fx_rate (no position changes)
`cost_local` is the same running cost in the asset's currency (without fx); average_cost =
cost_local / quantity. Every money figure is rounded half-even to 10 places after each
transaction, quantities to 10 and the average cost to 6 (the stored precision), so applying
one more transaction to a stored position gives what replaying them all would.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet

from backend.portfolios.models import Portfolio, Position, Transaction

ZERO = Decimal(0)
PLACES = Decimal("1e-10")
COST_PLACES = Decimal("1e-6")
CONTEXT = decimal.Context(prec=80, rounding=decimal.ROUND_HALF_EVEN)


class InsufficientQuantity(ValueError):
    """A sell of more than is held at its time (or a change leaving a later sell so)."""

    code = "insufficient_quantity"

    def __init__(self, transaction_id: int | None, message: str) -> None:
        super().__init__(message)
        self.transaction_id = transaction_id


def _money(value: Decimal) -> Decimal:
    return value.quantize(PLACES, rounding=decimal.ROUND_HALF_EVEN, context=CONTEXT)


def ratio_parse(ratio: str) -> tuple[Decimal, Decimal]:
    """'N:M' -> (N, M), both positive numbers; ValueError otherwise."""
    new, colon, old = (ratio or "").partition(":")
    try:
        parts = (Decimal(new.strip()), Decimal(old.strip()))
    except decimal.InvalidOperation as exc:
        raise ValueError(f'ratio must be "N:M" with two positive numbers, not {ratio!r}') from exc
    if not colon or not all(p.is_finite() and p > 0 for p in parts):
        raise ValueError(f'ratio must be "N:M" with two positive numbers, not {ratio!r}')
    return parts


@dataclass(frozen=True)
class Holding:
    """A position's state between two transactions."""

    quantity: Decimal = ZERO
    cost: Decimal = ZERO  # base currency
    cost_local: Decimal = ZERO  # the asset's currency
    realized_gain: Decimal = ZERO
    dividends: Decimal = ZERO

    @property
    def average_cost(self) -> Decimal:
        if self.quantity <= 0:
            return ZERO
        return CONTEXT.divide(self.cost_local, self.quantity).quantize(COST_PLACES, rounding=decimal.ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Entry:
    """What the derivation reads of a transaction."""

    id: int | None
    type: str
    quantity: Decimal | None
    price: Decimal | None
    fee: Decimal
    amount: Decimal | None
    ratio: str
    fx_rate: Decimal

    @classmethod
    def of(cls, t: Transaction) -> Entry:
        return cls(t.pk, t.type, t.quantity, t.price, t.fee, t.amount, t.ratio, t.fx_rate)


ENTRY_FIELDS = ("pk", "type", "quantity", "price", "fee", "amount", "ratio", "fx_rate")


def entry_apply(holding: Holding, entry: Entry) -> Holding:
    """One transaction's formula. Raises InsufficientQuantity for a sell of more than held."""
    mul, add, sub = CONTEXT.multiply, CONTEXT.add, CONTEXT.subtract
    kind = entry.type
    if kind == Transaction.Type.BUY:
        assert entry.quantity is not None
        assert entry.price is not None
        local = add(mul(entry.quantity, entry.price), entry.fee)
        return replace(
            holding,
            quantity=add(holding.quantity, entry.quantity),
            cost=_money(add(holding.cost, mul(local, entry.fx_rate))),
            cost_local=_money(add(holding.cost_local, local)),
        )
    if kind == Transaction.Type.SELL:
        assert entry.quantity is not None
        assert entry.price is not None
        q = entry.quantity
        if q > holding.quantity:
            raise InsufficientQuantity(entry.id, f"selling {q} but {holding.quantity} held at that time")
        whole = q == holding.quantity
        share = holding.cost if whole else _money(CONTEXT.divide(mul(holding.cost, q), holding.quantity))
        share_local = (
            holding.cost_local if whole else _money(CONTEXT.divide(mul(holding.cost_local, q), holding.quantity))
        )
        proceeds = mul(sub(mul(q, entry.price), entry.fee), entry.fx_rate)
        return replace(
            holding,
            quantity=sub(holding.quantity, q),
            cost=sub(holding.cost, share),
            cost_local=sub(holding.cost_local, share_local),
            realized_gain=_money(add(holding.realized_gain, sub(proceeds, share))),
        )
    if kind == Transaction.Type.DIVIDEND:
        assert entry.amount is not None
        return replace(holding, dividends=_money(add(holding.dividends, mul(entry.amount, entry.fx_rate))))
    if kind == Transaction.Type.SPLIT:
        new, old = ratio_parse(entry.ratio)
        return replace(holding, quantity=_money(CONTEXT.divide(mul(holding.quantity, new), old)))
    return holding  # a fee: the portfolio's, not the position's


def entries_replay(entries: Iterable[Entry], start: Holding | None = None) -> Holding:
    holding = start or Holding()
    for entry in entries:
        holding = entry_apply(holding, entry)
    return holding


def fee_of(entry_amount: Decimal | None, fx_rate: Decimal) -> Decimal:
    return _money(CONTEXT.multiply(entry_amount or ZERO, fx_rate))


def _of_position(portfolio_id: int, asset_id: int) -> QuerySet[Transaction]:
    """The transactions a position is derived from (a fee naming the asset is the portfolio's)."""
    return Transaction.objects.filter(portfolio_id=portfolio_id, asset_id=asset_id).exclude(type=Transaction.Type.FEE)


def _ordered(portfolio_id: int, asset_id: int) -> Iterable[Entry]:
    rows = _of_position(portfolio_id, asset_id).order_by("executed_at", "pk").values_list(*ENTRY_FIELDS)
    # A list, not a server-side cursor: a refused sell abandons the replay half-way.
    return [Entry(*row) for row in rows]


def _holding_of(position: Position) -> Holding | None:
    """A stored position's state, if it was derived from the ledger."""
    if position.cost_local is None or position.cost_basis is None:
        return None
    return Holding(
        position.quantity, position.cost_basis, position.cost_local, position.realized_gain, position.dividends
    )


def _position_store(position: Position | None, *, portfolio_id: int, asset_id: int, holding: Holding) -> None:
    if position is None:
        position = Position(portfolio_id=portfolio_id, asset_id=asset_id)
    elif position.quantity == 0 and holding.quantity > 0:
        position.valued = False  # held again: no previous valuation to compare with
    position.quantity = holding.quantity
    position.average_cost = holding.average_cost
    position.cost_basis = holding.cost
    position.cost_local = holding.cost_local
    position.realized_gain = holding.realized_gain
    position.dividends = holding.dividends
    position.save()


def position_derive(*, portfolio: Portfolio, asset_id: int, appended: Transaction | None = None) -> None:
    """Re-derive the portfolio's position in this asset from its transactions (the caller
    holds the portfolio's row lock). `appended`: a transaction just added; when nothing of
    the asset applies after it, it is applied to the stored position alone (no replay).
    No transactions left: the position goes. Raises InsufficientQuantity (the caller's
    transaction then rolls back: nothing changes)."""
    position = Position.objects.filter(portfolio=portfolio, asset_id=asset_id).first()
    state = _holding_of(position) if position is not None and appended is not None else None
    if state is not None and appended is not None:
        later = _of_position(portfolio.pk, asset_id).filter(executed_at__gt=appended.executed_at)
        if not later.exists():
            _position_store(
                position, portfolio_id=portfolio.pk, asset_id=asset_id, holding=entry_apply(state, Entry.of(appended))
            )
            return
    if not _of_position(portfolio.pk, asset_id).exists():
        if position is not None:
            position.delete()
        return
    holding = entries_replay(_ordered(portfolio.pk, asset_id))
    _position_store(position, portfolio_id=portfolio.pk, asset_id=asset_id, holding=holding)


def ledger_totals_store(*, portfolio: Portfolio) -> None:
    """The portfolio's ledger figures: its positions' realized gains and dividends, and its
    fee transactions."""
    realized = dividends = ZERO
    for gain, paid in Position.objects.filter(portfolio=portfolio).values_list("realized_gain", "dividends"):
        realized, dividends = CONTEXT.add(realized, gain), CONTEXT.add(dividends, paid)
    fees = ZERO
    fee_rows = Transaction.objects.filter(portfolio=portfolio, type=Transaction.Type.FEE)
    for amount, fx_rate in fee_rows.values_list("amount", "fx_rate"):
        fees = CONTEXT.add(fees, fee_of(amount, fx_rate))
    Portfolio.objects.filter(pk=portfolio.pk).update(realized_gain=realized, dividends=dividends, fees=fees)
    portfolio.realized_gain, portfolio.dividends, portfolio.fees = realized, dividends, fees


def position_adopt(*, portfolio: Portfolio, asset_id: int, now: datetime) -> None:
    """A position written outside the ledger (a script, a fixture) becomes one opening buy at
    its average cost, fee 0, fx_rate 1 (as the migration did for existing ones), so that
    deriving the asset from the ledger loses nothing."""
    position = Position.objects.filter(portfolio=portfolio, asset_id=asset_id, cost_local__isnull=True).first()
    if position is None or _of_position(portfolio.pk, asset_id).exists():
        return
    Transaction.objects.create(
        portfolio=portfolio,
        asset_id=asset_id,
        type=Transaction.Type.BUY,
        quantity=position.quantity,
        price=position.average_cost,
        fee=ZERO,
        currency=position.asset.currency,
        fx_rate=Decimal(1),
        executed_at=min(position.created_at or now, now),
    )
    position_derive(portfolio=portfolio, asset_id=asset_id)
