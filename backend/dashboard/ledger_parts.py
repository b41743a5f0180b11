"""The dashboard's page of a portfolio's ledger: its latest transactions, newest first, and how
many there are. The REST list (`/api/portfolios/<id>/transactions/`) answers the whole ledger
in the order it applies; after an import of 100,000 lines the dashboard wants a page of it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypedDict

from backend.core.clock import iso_z
from backend.portfolios.models import Portfolio, Transaction

RECENT_DEFAULT = 50
RECENT_MAX = 500
_COLUMNS = ("pk", "type", "asset__symbol", "quantity", "price", "fee", "amount", "ratio", "currency", "fx_rate")


class LedgerPage(TypedDict):
    count: int
    transactions: list[dict[str, Any]]


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)  # as recorded, not rounded to cents


def ledger_recent(*, portfolio_id: int, user_id: int, limit: int = RECENT_DEFAULT) -> LedgerPage | None:
    """The owner's portfolio's latest `limit` transactions (executed_at, then id, newest
    first) and the ledger's size; None when the portfolio is not the user's."""
    if not Portfolio.objects.filter(pk=portfolio_id, owner_id=user_id).exists():
        return None
    ledger = Transaction.objects.filter(portfolio_id=portfolio_id)
    rows = ledger.order_by("-executed_at", "-pk").values_list(*_COLUMNS, "executed_at", "external_id")[:limit]
    transactions = [
        {
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
        }
        for pk, kind, symbol, quantity, price, fee, amount, ratio, currency, fx_rate, executed_at, external_id in rows
    ]
    return {"count": ledger.count(), "transactions": transactions}
