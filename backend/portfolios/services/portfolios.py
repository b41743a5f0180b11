"""Changes a user makes to their portfolios, and the old position shortcuts, which write the
ledger (docs/protocol.md, "Transactions"): adding a position records a buy at its average
cost (fee 0), changing one replaces its symbol's transactions with one such buy, removing
one deletes them. Every change asks for a revaluation of the portfolio (`portfolio_changed`;
a task after commit), so the stored figures and subscribers follow."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Min

from backend.market.symbols import symbol_normalize
from backend.portfolios.models import Portfolio, Position, Transaction

from .ledger import ledger_totals_store, position_adopt, position_derive
from .transactions import (
    TransactionInput,
    assets_prepare,
    changed,
    fx_resolve,
    portfolio_locked,
    transaction_record,
)


class PortfolioNameTaken(ValueError):
    pass


class PositionExists(ValueError):
    pass


def portfolio_create(*, owner: User, name: str) -> Portfolio:
    try:
        with transaction.atomic():
            return Portfolio.objects.create(owner=owner, name=name)
    except IntegrityError as exc:
        raise PortfolioNameTaken(f"you already have a portfolio named {name!r}") from exc


def portfolio_rename(*, portfolio: Portfolio, name: str) -> Portfolio:
    portfolio.name = name
    try:
        with transaction.atomic():
            portfolio.save(update_fields=["name", "updated_at"])
    except IntegrityError as exc:
        raise PortfolioNameTaken(f"you already have a portfolio named {name!r}") from exc
    return portfolio


@transaction.atomic
def portfolio_delete(*, portfolio: Portfolio) -> None:
    # Wait for a revaluation holding the row: its snapshots are then visible to the cascade
    # (snapshots have no database-level key, models.PortfolioSnapshot).
    Portfolio.objects.select_for_update().filter(pk=portfolio.pk).exists()
    portfolio.delete()


def position_add(*, portfolio: Portfolio, symbol: str, quantity: Decimal, average_cost: Decimal) -> Position:
    """Hold a new symbol: a buy at `average_cost`, fee 0, at the latest rate. A well-formed
    symbol never seen before becomes tracked (and is fetched at once); raises InvalidSymbol,
    PositionExists or FxUnavailable."""
    symbol = symbol_normalize(symbol)
    if Position.objects.filter(portfolio=portfolio, asset__symbol=symbol).exists():
        raise PositionExists(f"{symbol} is already in this portfolio: change that position instead")
    transaction_record(
        portfolio=portfolio,
        data=TransactionInput(type="buy", symbol=symbol, quantity=quantity, price=average_cost, fee=Decimal(0)),
    )
    return Position.objects.select_related("asset").get(portfolio=portfolio, asset__symbol=symbol)


def position_get(*, portfolio: Portfolio, symbol: str) -> Position:
    """Raises InvalidSymbol or Position.DoesNotExist."""
    return Position.objects.select_related("asset").get(portfolio=portfolio, asset__symbol=symbol_normalize(symbol))


def position_change(
    *, position: Position, quantity: Decimal | None = None, average_cost: Decimal | None = None
) -> Position:
    """Replace the symbol's transactions with one buy of `quantity` at `average_cost` (each
    the position's own when not given), dated at the first of them, fee 0, at the latest
    rate. Raises FxUnavailable."""
    asset = position.asset
    assets_prepare(portfolio=position.portfolio, symbols=[asset.symbol])
    with portfolio_locked(position.portfolio) as locked:
        now = datetime.now(UTC)
        position_adopt(portfolio=locked, asset_id=asset.pk, now=now)
        current = Position.objects.get(pk=position.pk)
        ledger = Transaction.objects.filter(portfolio=locked, asset=asset)
        first = ledger.aggregate(first=Min("executed_at"))["first"] or now
        ledger.delete()
        Transaction.objects.create(
            portfolio=locked,
            asset=asset,
            type=Transaction.Type.BUY,
            quantity=quantity if quantity is not None else current.quantity,
            price=average_cost if average_cost is not None else current.average_cost,
            fee=Decimal(0),
            currency=asset.currency,
            fx_rate=fx_resolve(None, currency=asset.currency, base=locked.base_currency),
            executed_at=first,
        )
        position_derive(portfolio=locked, asset_id=asset.pk)
        ledger_totals_store(portfolio=locked)
        changed(locked.pk, since=first)
    return Position.objects.select_related("asset").get(pk=position.pk)


def position_remove(*, position: Position) -> None:
    """Delete the symbol's transactions, and with them the position."""
    with portfolio_locked(position.portfolio) as locked:
        ledger = Transaction.objects.filter(portfolio=locked, asset_id=position.asset_id)
        first = ledger.aggregate(first=Min("executed_at"))["first"]
        ledger.delete()
        position_derive(portfolio=locked, asset_id=position.asset_id)
        ledger_totals_store(portfolio=locked)
        changed(locked.pk, since=first)
