"""Changes a user makes to their alerts and notifications. A new symbol becomes tracked and
is fetched at once (backend.market.services.tracking.asset_track)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from backend.alerts.models import Alert, AlertEvent
from backend.market.services.tracking import asset_track


class AlertLimitReached(ValueError):
    """The user has ALERTS_MAX_PER_USER active alerts already."""


def _limit_check(*, owner_id: int) -> None:
    # The owner's row lock serialises their creations, so two at once cannot both pass.
    User.objects.select_for_update().filter(pk=owner_id).exists()
    if Alert.objects.filter(owner_id=owner_id, active=True).count() >= settings.ALERTS_MAX_PER_USER:
        raise AlertLimitReached(f"at most {settings.ALERTS_MAX_PER_USER} active alerts")


@transaction.atomic
def alert_create(
    *, owner: User, symbol: str, condition: str, threshold: Decimal, repeat: str = Alert.Repeat.ONCE
) -> Alert:
    """Raises InvalidSymbol or AlertLimitReached. The alert is checked from the next stored
    quote of its symbol on (also when the condition already holds)."""
    _limit_check(owner_id=owner.pk)
    asset = asset_track(symbol=symbol)
    return Alert.objects.create(owner=owner, asset=asset, condition=condition, threshold=threshold, repeat=repeat)


@transaction.atomic
def alert_update(
    *,
    alert: Alert,
    condition: str | None = None,
    threshold: Decimal | None = None,
    repeat: str | None = None,
    active: bool | None = None,
) -> Alert:
    """Change an alert. A change of its condition or threshold, or switching it back on,
    arms it afresh (it fires on the next quote that satisfies it). Raises AlertLimitReached
    when switching it on would pass the limit."""
    # Locked and re-read: a check may have fired or re-armed it since the caller read it.
    alert = Alert.objects.select_for_update().select_related("asset").get(pk=alert.pk)
    fresh = False
    if active and not alert.active:
        _limit_check(owner_id=alert.owner_id)
        fresh = True
    if condition is not None and condition != alert.condition:
        alert.condition, fresh = condition, True
    if threshold is not None and threshold != alert.threshold:
        alert.threshold, fresh = threshold, True
    if repeat is not None:
        alert.repeat = repeat
    if active is not None:
        alert.active = active
    if fresh:
        alert.armed, alert.state_at = True, None
    alert.save(update_fields=["condition", "threshold", "repeat", "active", "armed", "state_at"])
    return alert


def alert_delete(*, alert: Alert) -> None:
    """Its firings go with it."""
    alert.delete()


def notification_mark_read(*, event: AlertEvent) -> AlertEvent:
    """Idempotent: a firing read already keeps its first read time."""
    if event.read_at is None:
        now = timezone.now()
        if AlertEvent.objects.filter(pk=event.pk, read_at=None).update(read_at=now):
            event.read_at = now
        else:
            event.refresh_from_db(fields=["read_at"])
    return event
