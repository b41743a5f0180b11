"""Changes a user makes to their portfolios and positions. Every position change asks for a
revaluation of the portfolio (`portfolio_changed`; a task after commit), so the stored
figures and subscribers follow."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from backend.market.services.tracking import asset_track
from backend.market.symbols import symbol_normalize
from backend.portfolios.models import Portfolio, Position
from backend.portfolios.signals import portfolio_changed


class PortfolioNameTaken(ValueError):
    pass


class PositionExists(ValueError):
    pass


def _revalue_after_commit(portfolio_id: int) -> None:
    # The receiver (tasks/portfolios.py) enqueues the revaluation once this commits.
    portfolio_changed.send(sender=Portfolio, portfolio_id=portfolio_id)


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


@transaction.atomic
def position_add(*, portfolio: Portfolio, symbol: str, quantity: Decimal, average_cost: Decimal) -> Position:
    """Hold a new symbol. A well-formed symbol never seen before becomes tracked (and is
    fetched at once); raises InvalidSymbol or PositionExists."""
    asset = asset_track(symbol=symbol)
    if Position.objects.filter(portfolio=portfolio, asset=asset).exists():
        raise PositionExists(f"{asset.symbol} is already in this portfolio: change that position instead")
    position = Position.objects.create(portfolio=portfolio, asset=asset, quantity=quantity, average_cost=average_cost)
    _revalue_after_commit(portfolio.pk)
    return position


def position_get(*, portfolio: Portfolio, symbol: str) -> Position:
    """Raises InvalidSymbol or Position.DoesNotExist."""
    return Position.objects.select_related("asset").get(portfolio=portfolio, asset__symbol=symbol_normalize(symbol))


@transaction.atomic
def position_change(
    *, position: Position, quantity: Decimal | None = None, average_cost: Decimal | None = None
) -> Position:
    if quantity is not None:
        position.quantity = quantity
    if average_cost is not None:
        position.average_cost = average_cost
    position.save(update_fields=["quantity", "average_cost", "updated_at"])
    _revalue_after_commit(position.portfolio_id)
    return position


@transaction.atomic
def position_remove(*, position: Position) -> None:
    portfolio_id = position.portfolio_id
    position.delete()
    _revalue_after_commit(portfolio_id)
