"""Reads of portfolios shaped for clients, with live valuations from the valuation service
(so a client never sees figures older than the latest quotes)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from backend.core.clock import iso_z, utc_now_iso
from backend.portfolios.models import Portfolio, Position, Transaction
from backend.portfolios.payloads import portfolio_update_payload
from backend.portfolios.position_valuation import by_portfolio, position_valuations
from backend.portfolios.valuation import portfolio_valuations
from backend.realtime.payloads import PortfolioUpdate


def portfolio_snapshot(*, portfolio_id: int, user_id: int) -> PortfolioUpdate | None:
    """The current valuation of one of the user's portfolios as a `portfolio_update`
    (`value_changed` false: nothing moved, it is a snapshot; every position listed). None
    when the portfolio does not exist or is not the user's: callers answer both the same way."""
    valuations = portfolio_valuations(portfolios=Portfolio.objects.filter(pk=portfolio_id, owner_id=user_id))
    if not valuations:
        return None
    positions = position_valuations(positions=Position.objects.filter(portfolio_id=portfolio_id))
    return portfolio_update_payload(valuations[0], positions, value_changed=False, valued_at=datetime.now(UTC))


def portfolios_read(*, owner_id: int, portfolio_id: int | None = None) -> list[dict[str, Any]]:
    """The owner's portfolios (or one of them) with live figures and every position (those
    sold down to 0 too, with their realized figures): a handful of queries whatever the
    number of portfolios. Money in each portfolio's base currency, prices in the asset's.
    Decimals: the API rounds at the edge."""
    portfolios = Portfolio.objects.filter(owner_id=owner_id)
    if portfolio_id is not None:
        portfolios = portfolios.filter(pk=portfolio_id)
    valuations = portfolio_valuations(portfolios=portfolios)
    positions = by_portfolio(
        position_valuations(positions=Position.objects.filter(portfolio_id__in=[v.portfolio_id for v in valuations]))
    )
    now = utc_now_iso()
    result: list[dict[str, Any]] = []
    for valuation in valuations:
        result.append(
            {
                "id": valuation.portfolio_id,
                "name": valuation.name,
                "currency": valuation.currency,
                **asdict(valuation.figures),  # the six figures, as the valuation service names them
                **asdict(valuation.ledger),  # realized_gain, dividends, fees
                "unpriced_positions": valuation.unpriced,
                "valued_at": now,
                "positions": [
                    {
                        "symbol": p.symbol,
                        "quantity": p.quantity,
                        # A cost is a price: sent as stored, like prices (not cents).
                        "average_cost": float(p.average_cost),
                        "current_price": p.current_price,
                        "current_value": p.current_value,
                        "daily_change": p.daily_change,
                        "total_return": p.total_return,
                        "total_return_percent": p.total_return_percent,
                        "priced": p.priced,
                        "currency": p.currency,
                        "fx_rate": p.fx_rate,
                        "cost_basis": p.cost,
                        "realized_gain": p.realized_gain,
                        "dividends": p.dividends,
                    }
                    for p in positions.get(valuation.portfolio_id, [])
                ],
            }
        )
    return result


def position_read(*, owner_id: int, portfolio_id: int, symbol: str) -> dict[str, Any] | None:
    for portfolio in portfolios_read(owner_id=owner_id, portfolio_id=portfolio_id):
        for position in portfolio["positions"]:
            if position["symbol"] == symbol:
                return dict(position)
    return None


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


_TRANSACTION_COLUMNS = (
    "pk",
    "type",
    "asset__symbol",
    "quantity",
    "price",
    "fee",
    "amount",
    "ratio",
    "currency",
    "fx_rate",
    "executed_at",
    "external_id",
    "created_at",
)


def _transaction_row(row: tuple[Any, ...]) -> dict[str, Any]:
    pk, kind, symbol, quantity, price, fee, amount, ratio, currency, fx_rate, executed_at, external_id, created = row
    # A transaction is sent as recorded: its numbers as stored (not rounded to cents).
    return {
        "id": pk,
        "type": kind,
        "symbol": symbol,
        "quantity": _number(quantity),
        "price": _number(price),
        "fee": _number(fee),
        "amount": _number(amount),
        "ratio": ratio or None,
        "currency": currency,
        "fx_rate": _number(fx_rate),
        "executed_at": iso_z(executed_at),
        "external_id": external_id,
        "created_at": iso_z(created),
    }


def transactions_read(*, portfolio_id: int, symbol: str | None = None) -> list[dict[str, Any]]:
    """A portfolio's ledger in the order it applies (executed_at, then id)."""
    rows = Transaction.objects.filter(portfolio_id=portfolio_id).order_by("executed_at", "pk")
    if symbol:
        rows = rows.filter(asset__symbol=symbol.strip().upper())
    return [_transaction_row(row) for row in rows.values_list(*_TRANSACTION_COLUMNS)]


def transactions_recent(*, portfolio_id: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """The ledger's size and its latest `limit` transactions, newest first (executed_at, id)."""
    ledger = Transaction.objects.filter(portfolio_id=portfolio_id)
    rows = ledger.order_by("-executed_at", "-pk").values_list(*_TRANSACTION_COLUMNS)[:limit]
    return ledger.count(), [_transaction_row(row) for row in rows]


def transaction_read(*, portfolio_id: int, transaction_id: int) -> dict[str, Any]:
    row = Transaction.objects.filter(portfolio_id=portfolio_id, pk=transaction_id).values_list(*_TRANSACTION_COLUMNS)
    return _transaction_row(row.get())
