"""Reading alerts and firings: a user's own (REST, the dashboard) and the counts operations
report (/metrics, the status page)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from backend.core.clock import iso_z

from .models import Alert, AlertEvent
from .payloads import alert_body, notification_payload

NOTIFICATIONS_LISTED = 100


def _alerts(owner_id: int) -> QuerySet[Alert]:
    return (
        Alert.objects.filter(owner_id=owner_id)
        .select_related("asset")
        .annotate(last_triggered_at=Max("events__triggered_at"))
        .order_by("-created_at", "-id")
    )


def _last_triggered(alert: Alert) -> datetime | None:
    return getattr(alert, "last_triggered_at", None)  # annotated by _alerts()


def alerts_read(*, owner_id: int, symbol: str | None = None) -> list[dict[str, Any]]:
    alerts = _alerts(owner_id)
    if symbol is not None:
        alerts = alerts.filter(asset__symbol=symbol)
    return [alert_body(a, symbol=a.asset.symbol, last_triggered_at=_last_triggered(a)) for a in alerts]


def alert_read(*, owner_id: int, alert_id: int) -> dict[str, Any]:
    """Raises Alert.DoesNotExist for a missing alert and for another user's."""
    alert = _alerts(owner_id).get(pk=alert_id)
    return alert_body(alert, symbol=alert.asset.symbol, last_triggered_at=_last_triggered(alert))


def alert_owned(*, owner_id: int, alert_id: int) -> Alert:
    """Raises Alert.DoesNotExist for a missing alert and for another user's."""
    return Alert.objects.select_related("asset").get(pk=alert_id, owner_id=owner_id)


def notification_body(event: AlertEvent) -> dict[str, Any]:
    payload = notification_payload(
        event_id=event.pk,
        alert_id=event.alert_id,
        symbol=event.alert.asset.symbol,
        condition=event.condition,
        threshold=event.threshold,
        price=event.price,
        change_percent=event.change_percent,
        triggered_at=event.triggered_at,
    )
    return {**payload, "quoted_at": iso_z(event.quoted_at), "read_at": iso_z(event.read_at)}


def notifications_read(
    *, owner_id: int, unread: bool = False, limit: int = NOTIFICATIONS_LISTED
) -> list[dict[str, Any]]:
    """The owner's firings, newest first (at most `limit`)."""
    events = AlertEvent.objects.filter(owner_id=owner_id).select_related("alert__asset")
    if unread:
        events = events.filter(read_at=None)
    return [notification_body(e) for e in events.order_by("-triggered_at", "-id")[:limit]]


def notification_owned(*, owner_id: int, event_id: int) -> AlertEvent:
    """Raises AlertEvent.DoesNotExist for a missing firing and for another user's."""
    return AlertEvent.objects.select_related("alert__asset").get(pk=event_id, owner_id=owner_id)


def notifications_unread_count(*, owner_id: int) -> int:
    return AlertEvent.objects.filter(owner_id=owner_id, read_at=None).count()


def alert_counts() -> dict[str, int]:
    """Alerts by state and firings (all time, the last 24 h, unread), for operations."""
    # Named apart from the fields: an aggregate may not share a field's name.
    alerts = Alert.objects.aggregate(
        n_active=Count("id", filter=Q(active=True)),
        n_disarmed=Count("id", filter=Q(active=True, armed=False)),
        n_inactive=Count("id", filter=Q(active=False)),
        n_users=Count("owner", filter=Q(active=True), distinct=True),
    )
    since = timezone.now() - timedelta(hours=24)
    events = AlertEvent.objects.aggregate(
        total=Count("id"),
        last_24h=Count("id", filter=Q(triggered_at__gte=since)),
        unread=Count("id", filter=Q(read_at=None)),
    )
    return {
        "active": alerts["n_active"],
        "disarmed": alerts["n_disarmed"],
        "inactive": alerts["n_inactive"],
        "users_with_active": alerts["n_users"],
        "firings_total": events["total"],
        "firings_last_24h": events["last_24h"],
        "firings_unread": events["unread"],
    }
