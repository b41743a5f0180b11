"""A new holding's history, backfilled once in the background: the receiver of
`holding_opened` enqueues `backfill_history` for symbols not yet marked done, and the task
loads HISTORY_BACKFILL_DAYS of daily bars for those (and the FX pairs their holders convert
through) that have none, each under a Redis SET NX marker so that a symbol is loaded once
however many portfolios open it at the same time. A source that did not answer releases its
symbols' markers and the task retries them (docs/history-and-demo.md)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.dispatch import receiver
from redis.exceptions import RedisError

from backend.core.redis import redis_client
from backend.market.services.history import history_backfill_candidates, history_load
from backend.portfolios.signals import holding_opened

logger = logging.getLogger(__name__)

MAX_RETRIES = 3


def backfill_marker(symbol: str) -> str:
    return f"tf:history:backfilled:{symbol}"


@receiver(holding_opened, dispatch_uid="tasks.history.backfill_enqueue")
def backfill_enqueue(*, symbols: list[str], **_: Any) -> None:
    """Enqueue the backfill after commit, unless every symbol is marked done already (the
    usual case: a buy in a symbol someone held before costs one Redis round trip)."""
    wanted = sorted({str(s) for s in symbols})
    if not wanted:
        return
    try:
        if redis_client().exists(*(backfill_marker(s) for s in wanted)) == len(wanted):
            return
    except RedisError:
        pass  # the task claims each symbol itself: enqueueing once too often is harmless
    backfill_history.delay_on_commit(symbols=wanted)


@shared_task(
    name="tasks.history.backfill_history", bind=True, max_retries=MAX_RETRIES, soft_time_limit=240, time_limit=280
)
def backfill_history(self: Task, symbols: list[str]) -> dict[str, int]:
    now = datetime.now(UTC)
    days = settings.HISTORY_BACKFILL_DAYS
    client = redis_client()
    asked = [str(s) for s in symbols]
    candidates = history_backfill_candidates(symbols=asked, days=days, now=now)
    for covered in set(asked) - set(candidates):
        # History there already (seed_demo's, an earlier holder's): later buys skip the task.
        client.set(backfill_marker(covered), now.isoformat(), nx=True)
    claimed = [s for s in candidates if client.set(backfill_marker(s), now.isoformat(), nx=True)]
    if not claimed:
        return {"claimed": 0, "inserted": 0, "failed": 0}
    try:
        loaded = history_load(symbols=claimed, days=days, now=now)
    except Exception:
        client.delete(*(backfill_marker(s) for s in claimed))
        raise
    if loaded.failed:
        client.delete(*(backfill_marker(s) for s in loaded.failed))
    logger.info(
        "history backfill: %d bars for %d symbols over %d days (%s); %d to retry",
        loaded.inserted,
        len(claimed),
        days,
        loaded.source,
        len(loaded.failed),
    )
    if loaded.failed and self.request.retries < MAX_RETRIES:
        raise self.retry(kwargs={"symbols": loaded.failed}, countdown=30 * 2**self.request.retries)
    return {"claimed": len(claimed), "inserted": loaded.inserted, "failed": len(loaded.failed)}
