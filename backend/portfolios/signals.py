"""What portfolio services ask of the pipeline (see backend/market/signals.py for why these
are signals): `tasks/portfolios.py` receives them and enqueues the revaluation after commit."""

from __future__ import annotations

from django.dispatch import Signal

# A portfolio's holdings changed. kwargs: portfolio_id (int).
portfolio_changed = Signal()

# Transactions at or after `since` were written or deleted: the daily values from that day
# on are re-derived (tasks/performance.py). kwargs: portfolio_id (int), since (date).
ledger_changed = Signal()

# A ledger entry in these symbols was recorded (the first one opens the holding): those
# without daily history get it backfilled once (tasks/history.py).
holding_opened = Signal()  # kwargs: portfolio_id:int, symbols:list[str]
