"""Daily values tasks (docs/returns.md): thin adapters over backend.performance.services.

`close_daily_values` is the beat's hourly pass (yesterday's and today's rows of every
portfolio). `rederive_daily_values` derives what back-dated transactions and history
backfills asked for, coalesced (services/rederive.py): the receivers below record each
request once its transaction committed and enqueue a runner only when none is scheduled.
Both are idempotent (rows are upserted from the ledger and the closes), so acks_late
redelivery is safe.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from celery import shared_task
from django.db import transaction
from django.dispatch import receiver

from backend.market.signals import history_loaded
from backend.performance.services.daily_values import daily_values_close
from backend.performance.services.rederive import rederive_pending, rederive_request, rederive_request_symbols
from backend.performance.sql import utc_today
from backend.portfolios.signals import ledger_changed

from .portfolios import RETRY

logger = logging.getLogger(__name__)


# 10,000 portfolios close in seconds; the limits leave room for far more, under the broker's
# 300 s visibility timeout.
@shared_task(name="tasks.performance.close_daily_values", soft_time_limit=240, time_limit=280, **RETRY)
def close_daily_values() -> dict[str, Any]:
    result = daily_values_close()
    logger.info(
        "daily values closed for %s: %d rows, %d live rows, %d portfolios derived one by one (%d left)",
        result.day,
        result.rows_closed,
        result.rows_live,
        result.portfolios_derived,
        result.portfolios_left,
    )
    return {
        "day": result.day.isoformat(),
        "rows_closed": result.rows_closed,
        "rows_live": result.rows_live,
        "portfolios_derived": result.portfolios_derived,
        "portfolios_left": result.portfolios_left,
    }


@shared_task(name="tasks.performance.rederive_daily_values", soft_time_limit=240, time_limit=280, **RETRY)
def rederive_daily_values() -> dict[str, int]:
    result = rederive_pending()
    if result.left:
        rederive_daily_values.delay()  # the rest, in the next runner's time limit
    logger.info("daily values re-derived for %d portfolios, %d left to the next run", result.portfolios, result.left)
    return {"portfolios_derived": result.portfolios, "portfolios_left": result.left}


@receiver(ledger_changed, dispatch_uid="tasks.performance.ledger_changed")
def ledger_rederive(*, portfolio_id: int, since: date, **_: Any) -> None:
    if since >= utc_today():
        return  # today's row is computed when read, and stored by the hourly pass

    # Recorded only once committed: a runner at work must not derive before the change is visible.
    def follow() -> None:
        if rederive_request(since_by_portfolio={int(portfolio_id): since}):
            rederive_daily_values.delay()

    transaction.on_commit(follow)


@receiver(history_loaded, dispatch_uid="tasks.performance.history_loaded")
def history_rederive(*, symbols: list[str], since: date, **_: Any) -> None:
    def follow() -> None:
        if rederive_request_symbols(symbols=symbols, since=since):
            rederive_daily_values.delay()

    transaction.on_commit(follow)
