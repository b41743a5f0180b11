"""Alerts in the pipeline: the check of a stored batch (called by
tasks/prices.py:stored_batch_complete before the batch is published, so its notifications go
out in the same layer message) and the email task that follows a firing when ALERTS_EMAIL
is on."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Task, shared_task
from django.conf import settings

from backend.alerts.services.check import alerts_check, stored_quotes
from backend.alerts.services.email import alert_emails_send
from backend.core.metrics import counter_add
from backend.market.services.refresh import BatchResult

logger = logging.getLogger(__name__)

EMAIL_RETRIES = 3


def batch_alerts_check(result: BatchResult) -> list[int]:
    """Check what a batch stored against the alerts and add their notifications to the
    batch's events; returns the new firings' ids. A failure is logged, not raised: the
    prices are stored and must still be published."""
    if not result.stored:
        return []
    started = time.perf_counter()
    try:
        # A caller that stored a batch without handing its quotes over: read them back.
        quotes = result.quotes or stored_quotes(symbols=result.stored)
        check = alerts_check(quotes=quotes)
    except Exception:
        logger.exception("checking the alerts of %d stored quotes failed", len(result.stored))
        counter_add("alert_check_errors", 1)
        return []
    result.stages["alerts"] = time.perf_counter() - started
    result.events.extend(check.events)
    if check.fired:
        logger.info("%d alerts fired", len(check.fired))
    return [f.event_id for f in check.fired]


def alert_emails_enqueue(event_ids: list[int]) -> None:
    """After the publish: email the firings when ALERTS_EMAIL is on. Never raises."""
    if not event_ids or not settings.ALERTS_EMAIL:
        return
    try:
        send_alert_emails.apply_async(kwargs={"event_ids": event_ids})
    except Exception:
        logger.exception("could not enqueue the emails of %d firings", len(event_ids))


@shared_task(
    name="tasks.alerts.send_alert_emails",
    bind=True,
    acks_late=True,
    max_retries=EMAIL_RETRIES,
    soft_time_limit=60,
    time_limit=90,
)
def send_alert_emails(self: Task, event_ids: list[int]) -> dict[str, Any]:
    """Email firings to their owners; a failed send is logged and retried with backoff, and
    given up after EMAIL_RETRIES (the firings stay stored and listed either way)."""
    try:
        sent = alert_emails_send(event_ids=event_ids)
    except Exception as error:
        attempt = int(self.request.retries)
        if attempt >= EMAIL_RETRIES:
            logger.exception("emailing %d firings failed; giving up", len(event_ids))
            return {"sent": 0, "failed": len(event_ids)}
        logger.warning("emailing %d firings failed (%s); retrying", len(event_ids), error)
        raise self.retry(countdown=5 * 2**attempt) from None
    return {"sent": sent}
