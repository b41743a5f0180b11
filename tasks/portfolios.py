"""Portfolio recalculation tasks: thin adapters over backend.portfolios.services.revaluation.

`recalculate_portfolios` is chained BY NAME after each price-fetch batch with the symbols that
changed (coalesced: one runner at a time drains every batch's symbols, see
services/coalesce.py); `revalue_portfolio` follows a position change. Both are idempotent (a rerun on the
same prices stores and publishes nothing), so acks_late redelivery is safe.
"""

from __future__ import annotations

import logging

from typing import Any

from celery import shared_task
from django.db import OperationalError
from django.dispatch import receiver

from backend.portfolios.services.coalesce import portfolios_revalue_coalesced
from backend.portfolios.services.revaluation import portfolios_revalue
from backend.portfolios.signals import portfolio_changed

logger = logging.getLogger(__name__)

RETRY = {
    "autoretry_for": (OperationalError,),  # lock timeouts, a database restart
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 5,
}


# A full refresh of 10,000 portfolios takes seconds; the limits leave room for 10x that,
# and stay under the broker's 300 s visibility timeout (acks_late redelivery).
@shared_task(name="tasks.portfolios.recalculate_portfolios", soft_time_limit=240, time_limit=280, **RETRY)
def recalculate_portfolios(symbols: list[str]) -> dict[str, int]:
    result = portfolios_revalue_coalesced(symbols=[str(s) for s in symbols])
    if result is None:
        logger.info("%d symbols handed to the recalculation already running", len(symbols))
        return {"portfolios_valued": 0, "portfolios_changed": 0, "snapshots_created": 0, "published": 0, "coalesced": 1}
    logger.info(
        "recalculated %d portfolios for %d symbols (and any pending): "
        "%d changed, %d snapshots, %d moved positions read for listeners, %d events",
        result.portfolios_valued,
        len(symbols),
        result.portfolios_changed,
        result.snapshots_created,
        result.positions_read,
        result.published,
    )
    return {
        "portfolios_valued": result.portfolios_valued,
        "portfolios_changed": result.portfolios_changed,
        "snapshots_created": result.snapshots_created,
        "published": result.published,
        "coalesced": 0,
    }


@shared_task(name="tasks.portfolios.revalue_portfolio", soft_time_limit=30, time_limit=60, **RETRY)
def revalue_portfolio(portfolio_id: int) -> dict[str, int]:
    result = portfolios_revalue(portfolio_ids=[int(portfolio_id)])
    logger.info("revalued portfolio %s: %d changed", portfolio_id, result.portfolios_changed)
    return {"portfolios_changed": result.portfolios_changed, "published": result.published}


@receiver(portfolio_changed, dispatch_uid="tasks.portfolios.revaluation_enqueue")
def revaluation_enqueue(*, portfolio_id: int, **_: Any) -> None:
    revalue_portfolio.delay_on_commit(portfolio_id=int(portfolio_id))
