"""The dashboard's page of a portfolio's ledger: its latest transactions, newest first, and how
many there are. The REST list (`/api/portfolios/<id>/transactions/`) answers the whole ledger
in the order it applies; after an import of 100,000 lines the dashboard wants a page of it."""

from __future__ import annotations

from typing import Any, TypedDict

from backend.portfolios.models import Portfolio
from backend.portfolios.selectors import transactions_recent

RECENT_DEFAULT = 50
RECENT_MAX = 500


class LedgerPage(TypedDict):
    count: int
    transactions: list[dict[str, Any]]


def ledger_recent(*, portfolio_id: int, user_id: int, limit: int = RECENT_DEFAULT) -> LedgerPage | None:
    """The owner's portfolio's latest `limit` transactions (executed_at, then id, newest
    first) and the ledger's size; None when the portfolio is not the user's."""
    if not Portfolio.objects.filter(pk=portfolio_id, owner_id=user_id).exists():
        return None
    count, transactions = transactions_recent(portfolio_id=portfolio_id, limit=limit)
    return {"count": count, "transactions": transactions}
