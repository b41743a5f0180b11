"""Price tasks: a scheduled cycle and one batch fetch. Thin: services do the work and return
events; these publish them, enqueue the next step, and own retries, time limits, redelivery
and logging. The receiver at the end turns a dispatch (a cycle, a forced refresh, a newly
tracked symbol) into enqueued batches."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from celery import Task, current_app, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, transaction
from django.dispatch import receiver
from redis.exceptions import RedisError

from backend.core.metrics import stages_observe
from backend.market.services.claims import claim_ttl, claims_kept, delivery_count, inflight_claim, inflight_token
from backend.market.services.refresh import (
    BatchResult,
    price_batch_fetch,
    price_batch_give_up,
    price_batch_split,
    prices_refresh_cycle,
)
from backend.market.signals import price_batches_dispatched
from backend.realtime.publish import publish_batch
from config.celery import BEAT_SENT_AT_HEADER

from .alerts import alert_emails_enqueue, batch_alerts_check
from .portfolios import revaluation_chain

logger = logging.getLogger(__name__)


def request_header(request: Any, name: str) -> Any:
    """A custom message header: Celery puts them on the request, or under `headers`."""
    value = getattr(request, name, None)
    return value if value is not None else (getattr(request, "headers", None) or {}).get(name)


def retry_countdown(retries: int) -> float:
    """Exponential backoff with full jitter, capped below the broker's visibility timeout."""
    ceiling = min(settings.PRICE_RETRY_BACKOFF * 2**retries, settings.PRICE_RETRY_BACKOFF_MAX)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


@shared_task(name="tasks.prices.refresh_prices", bind=True, acks_late=False, soft_time_limit=30, time_limit=45)
def refresh_prices(self: Task) -> dict[str, Any]:
    """One scheduled cycle (the beat entry). Safe to fire twice: a Redis lock skips overlap,
    and a second beat's send of the same tick is skipped. django-celery-beat names the entry
    in the `periodic_task_name` header of every send; config/celery.py stamps its send time."""
    entry = request_header(self.request, "periodic_task_name")
    sent_at = request_header(self.request, BEAT_SENT_AT_HEADER)
    dispatch = prices_refresh_cycle(
        beat_entry=str(entry) if entry else None, beat_sent_at=float(sent_at) if sent_at is not None else None
    )
    if not dispatch.skipped_locked:
        logger.info(
            "refresh run %s: %d symbols in %d batches", dispatch.run_id, len(dispatch.symbols), len(dispatch.task_ids)
        )
    # Counts, not the symbol lists: results live in Redis and in the log.
    return {
        "run_id": dispatch.run_id,
        "task_ids": dispatch.task_ids,
        "symbols": len(dispatch.symbols),
        "in_flight": len(dispatch.in_flight),
        "skipped_locked": dispatch.skipped_locked,
    }


@shared_task(
    name="tasks.prices.fetch_price_batch",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # counted against PRICE_FETCH_MAX_RETRIES below (read at run time)
    soft_time_limit=settings.PRICE_FETCH_SOFT_TIME_LIMIT,
    time_limit=settings.PRICE_FETCH_TIME_LIMIT,
)
def fetch_price_batch(self: Task, symbols: list[str], run_id: int | None = None, force: bool = False) -> dict[str, Any]:
    task_id = str(self.request.id)
    attempt = int(self.request.retries)
    final = attempt >= settings.PRICE_FETCH_MAX_RETRIES
    deliveries = delivery_count(task_id=task_id, attempt=attempt)
    if deliveries > settings.PRICE_FETCH_MAX_DELIVERIES:
        logger.error("batch %s attempt %d delivered %d times: giving up", task_id, attempt, deliveries)
        price_batch_give_up(
            symbols=symbols, run_id=run_id, task_id=task_id, attempt=attempt, reason="redelivery limit reached"
        )
        return {"gave_up": symbols}
    if deliveries > 1 and len(symbols) > 1:
        # An earlier delivery of this batch died with its worker, and one symbol may be what
        # kills it: go on one symbol per batch, so the others are not held back with it.
        singles = price_batch_split(symbols=symbols, run_id=run_id, task_id=task_id)
        logger.warning("batch %s died with its worker; split into %d single-symbol batches", task_id, len(singles))
        batches_enqueue(run_id=run_id, batches=singles, force=force)
        return {"split": len(singles)}
    token = inflight_token(run_id=run_id, task_id=task_id)
    try:
        with claims_kept(symbols=[str(s).upper() for s in symbols], token=token, run_id=run_id):
            result = price_batch_fetch(
                symbols=symbols, run_id=run_id, force=force, task_id=task_id, attempt=attempt, final_attempt=final
            )
    except SoftTimeLimitExceeded:
        if final:
            price_batch_give_up(symbols=symbols, run_id=run_id, task_id=task_id, attempt=attempt, reason="time limit")
            raise
        logger.warning("batch %s hit its time limit; retrying", task_id)
        raise self.retry(countdown=retry_countdown(attempt)) from None
    except (DatabaseError, RedisError) as error:
        # Our own database or Redis blinked: the whole batch is worth another try.
        if final:
            raise
        logger.warning("batch %s: %s; retrying", task_id, error)
        raise self.retry(exc=error, countdown=retry_countdown(attempt)) from None
    stored_batch_complete(result)
    if result.failed:
        logger.warning("batch %s: %d symbols failed: %s", task_id, len(result.failed), sorted(result.failed))
    if result.retry:
        countdown = retry_countdown(attempt)
        # Keep the claim on the symbols we retry, so no other fetch starts them meanwhile.
        inflight_claim(symbols=result.retry, token=token, ttl=countdown + claim_ttl())
        logger.info("batch %s: retrying %d symbols in %.1f s", task_id, len(result.retry), countdown)
        raise self.retry(kwargs={"symbols": result.retry, "run_id": run_id, "force": force}, countdown=countdown)
    return result.as_dict()


@dataclass
class FollowUp:
    """What follows a stored batch's publish: the symbols whose price changed (to revalue)
    and the firings (to email). The stream process runs it off its flush thread."""

    changed: list[str] = field(default_factory=list)
    fired: list[int] = field(default_factory=list)


def stored_batch_complete(result: BatchResult) -> None:
    """The steps after a batch's quotes are stored, whoever stored them (a fetch, a forced
    refresh, the stream): check its quotes against the alerts (their notifications join the
    batch's events), publish its events, email the firings, chain the revaluation of what
    changed."""
    batch_follow_up(batch_deliver(result))


def batch_deliver(result: BatchResult) -> FollowUp:
    """The part clients wait on: the alerts check and the publish; returns the rest."""
    fired = batch_alerts_check(result)
    batch_publish(result)
    return FollowUp(changed=list(result.changed), fired=fired)


def batch_follow_up(follow_up: FollowUp) -> None:
    alert_emails_enqueue(follow_up.fired)
    revaluation_chain(follow_up.changed)


def batch_publish(result: BatchResult) -> int:
    """Publish a stored batch's events in one layer message and record the batch's stages.
    A failure is logged, not raised: the prices are stored, and clients get them with the
    next change or a snapshot."""
    started = time.perf_counter()
    try:
        result.published = publish_batch(result.events)
    except Exception:
        logger.exception("publishing %d events failed", len(result.events))
    stages = dict(result.stages)
    stages["publish"] = time.perf_counter() - started
    # The batch's own pipeline: first upstream request to the events handed to the layer.
    stages["end_to_end"] = sum(stages.values())
    stages_observe(stages, counters={"quotes_stored": len(result.stored)})
    return result.published


@receiver(price_batches_dispatched, dispatch_uid="tasks.prices.batches_enqueue")
def batches_enqueue(*, run_id: int | None, batches: list[tuple[str, list[str]]], force: bool, **_: Any) -> None:
    """Enqueue the dispatched batches once the dispatching transaction commits."""

    def send() -> None:
        # One producer (one broker connection) for the whole cycle.
        with current_app.producer_or_acquire() as producer:
            for task_id, symbols in batches:
                fetch_price_batch.apply_async(
                    kwargs={"symbols": symbols, "run_id": run_id, "force": force}, task_id=task_id, producer=producer
                )

    transaction.on_commit(send)
