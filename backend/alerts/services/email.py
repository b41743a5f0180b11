"""Emailing firings (ALERTS_EMAIL) through Django's email backend. The firing is stored and
pushed before this runs; a send that fails is logged and retried by the task, never undoing
the firing. Each firing is claimed (`emailed_at`) before its send, so two runs of the task
never send it twice; a failed send gives the claim back."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.utils import timezone

from backend.alerts.models import Alert, AlertEvent
from backend.alerts.selectors import notification_body
from backend.core.metrics import counter_add

logger = logging.getLogger(__name__)


def _claim(event_ids: Sequence[int]) -> list[AlertEvent]:
    with transaction.atomic():
        events = list(
            AlertEvent.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=list(event_ids), emailed_at=None)
            .exclude(owner__email="")
            .select_related("owner", "alert__asset")
        )
        AlertEvent.objects.filter(pk__in=[e.pk for e in events]).update(emailed_at=timezone.now())
    return events


def _message(event: AlertEvent) -> EmailMessage:
    body = notification_body(event)
    condition = Alert.Condition(event.condition).label.lower()
    subject = f"Tickerflow alert: {body['symbol']} {condition} {body['threshold']:g}"
    text = f"{body['message']}.\n\nQuote time: {body['quoted_at']}\nFired: {body['triggered_at']}\n"
    return EmailMessage(subject=subject, body=text, from_email=settings.DEFAULT_FROM_EMAIL, to=[event.owner.email])


def alert_emails_send(*, event_ids: Sequence[int]) -> int:
    """Email the owners (with an address) of these firings, those not emailed yet. Returns
    how many were sent; raises what the email backend raised (the claims are given back)."""
    events = _claim(event_ids)
    if not events:
        return 0
    try:
        with get_connection(fail_silently=False) as mail:
            sent = mail.send_messages([_message(e) for e in events]) or 0
    except Exception:
        AlertEvent.objects.filter(pk__in=[e.pk for e in events]).update(emailed_at=None)
        counter_add("alert_emails_failed", len(events))
        raise
    counter_add("alert_emails_sent", sent)
    return sent
