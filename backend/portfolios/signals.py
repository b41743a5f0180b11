"""What portfolio services ask of the pipeline (see backend/market/signals.py for why these
are signals): `tasks/portfolios.py` receives them and enqueues the revaluation after commit."""

from __future__ import annotations

from django.dispatch import Signal

# A portfolio's holdings changed. kwargs: portfolio_id (int).
portfolio_changed = Signal()
