"""Portfolio revaluation tasks: thin adapters over backend.portfolios.services.revaluation,
which revalues and returns the events; these publish them (backend.realtime.publish), log
and count.

`revalue_for_symbols` (registered as tasks.portfolios.recalculate_portfolios) is chained BY
NAME after each price-fetch batch with the symbols that changed (coalesced: one runner at a
time drains every batch's symbols, see services/revaluation/coalesce.py); `revalue_portfolio`
follows a position change. Both are idempotent (a rerun on the same prices stores and
publishes nothing), so acks_late redelivery is safe.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from celery import shared_task
from django.db import OperationalError, transaction
from django.dispatch import receiver

from backend.market.signals import asset_currencies_changed
from backend.portfolios.services.currency_pairs import holders_pairs_track
from backend.portfolios.services.revaluation import RevalueResult, portfolios_revalue
from backend.portfolios.services.revaluation.coalesce import portfolios_revalue_coalesced, revaluation_request
from backend.portfolios.signals import portfolio_changed
from backend.realtime.events import Event
from backend.realtime.publish import publish_batch

logger = logging.getLogger(__name__)

RETRY = {
    "autoretry_for": (OperationalError,),  # lock timeouts, a database restart
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 5,
}


class _RoundPublisher:
    """Publishes each revaluation round's events in one publish_batch call once the round
    committed, and counts what went out. The figures are stored already, and a retry would
    find nothing changed and publish nothing: a failure is logged, never raised. Clients
    resync from the snapshot on (re)subscribe."""

    def __init__(self) -> None:
        self.published = 0

    def __call__(self, result: RevalueResult) -> None:
        if result.events:
            transaction.on_commit(partial(self._publish, result.events))

    def _publish(self, events: list[Event]) -> None:
        try:
            self.published += publish_batch(events)
        except Exception:
            logger.exception("publishing %d portfolio events failed", len(events))


# A full refresh of 10,000 portfolios takes seconds; the limits leave room for 10x that,
# and stay under the broker's 300 s visibility timeout (acks_late redelivery).
@shared_task(name="tasks.portfolios.recalculate_portfolios", soft_time_limit=240, time_limit=280, **RETRY)
def revalue_for_symbols(symbols: list[str]) -> dict[str, int]:
    publisher = _RoundPublisher()
    result = portfolios_revalue_coalesced(symbols=[str(s) for s in symbols], on_round=publisher)
    if result is None:
        logger.info("%d symbols handed to the revaluation already running", len(symbols))
        return {"portfolios_valued": 0, "portfolios_changed": 0, "snapshots_created": 0, "published": 0, "coalesced": 1}
    logger.info(
        "revalued %d portfolios for %d symbols (and any pending): "
        "%d changed, %d snapshots, %d moved positions read for listeners, %d events",
        result.portfolios_revalued,
        len(symbols),
        result.portfolios_changed,
        result.snapshots_created,
        result.positions_read,
        publisher.published,
    )
    return {
        "portfolios_valued": result.portfolios_revalued,
        "portfolios_changed": result.portfolios_changed,
        "snapshots_created": result.snapshots_created,
        "published": publisher.published,
        "coalesced": 0,
    }


# The Python name tasks/prices.py and tasks/inline.py import (the registered name is above).
recalculate_portfolios = revalue_for_symbols


@shared_task(name="tasks.portfolios.revalue_portfolio", soft_time_limit=30, time_limit=60, **RETRY)
def revalue_portfolio(portfolio_id: int) -> dict[str, int]:
    publisher = _RoundPublisher()
    result = portfolios_revalue(portfolio_ids=[int(portfolio_id)])
    publisher(result)
    logger.info("revalued portfolio %s: %d changed", portfolio_id, result.portfolios_changed)
    return {"portfolios_changed": result.portfolios_changed, "published": publisher.published}


@receiver(portfolio_changed, dispatch_uid="tasks.portfolios.revaluation_enqueue")
def revaluation_enqueue(*, portfolio_id: int, **_: Any) -> None:
    revalue_portfolio.delay_on_commit(portfolio_id=int(portfolio_id))


def revaluation_chain(changed: list[str]) -> None:
    """Chain the revaluation of what changed, unless a runner at work takes it."""
    if changed and revaluation_request(symbols=changed):
        revalue_for_symbols.apply_async(kwargs={"symbols": changed})


@receiver(asset_currencies_changed, dispatch_uid="tasks.portfolios.currencies_changed")
def currencies_changed(*, symbols: list[str], **_: Any) -> None:
    """A changed currency: the holders' new pairs get tracked (and fetched), and the holders
    are revalued at once (a position waiting on its new pair's first rate is counted
    unpriced until it arrives; the pair's quote then revalues it)."""

    def follow() -> None:
        holders_pairs_track(symbols=symbols)
        revaluation_chain(list(symbols))

    transaction.on_commit(follow)
