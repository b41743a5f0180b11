"""What market services ask of the pipeline.

Services never enqueue tasks (`backend` imports nothing of `tasks/`): they send these signals,
and `tasks/` connects the receivers that enqueue the work once the transaction commits
(docs/architecture.md, "Who enqueues what").
"""

from __future__ import annotations

from django.dispatch import Signal

# Batches of symbols to fetch. kwargs: run_id (int | None: a refresh run's id, None for a
# one-off fetch), batches (list of (task id, symbols)), force (bool: bypass the quote cache).
price_batches_dispatched = Signal()

# Assets whose currency changed (the source named another, or an operator corrected it):
# their value in every base currency changes, and a new pair may be needed. kwargs:
# symbols (list[str]).
asset_currencies_changed = Signal()

history_loaded = Signal()  # kwargs: symbols:list[str], since:date
