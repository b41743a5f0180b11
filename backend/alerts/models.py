"""Price alerts and their firings (docs/protocol.md, "Alerts").

An alert watches one asset: `above` (price >= threshold), `below` (price <= threshold),
`change_percent_above` / `change_percent_below` (today's change percent >= / <= threshold).
It is checked against every stored quote of its asset, in the pipeline step that stores it
(backend/alerts/services/check.py). `once` fires once, then is inactive; `rearm` fires, is
disarmed, and fires again only after a stored quote where its condition was false.

`state_at` is the quote time of the last quote that fired or re-armed the alert: an older
quote (a late or replayed batch) never changes its state. A firing (`AlertEvent`) is unique
per alert and quote time, so a batch stored twice fires once.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from backend.market.models import Asset


class Alert(models.Model):
    class Condition(models.TextChoices):
        ABOVE = "above", "Price at or above"
        BELOW = "below", "Price at or below"
        CHANGE_PERCENT_ABOVE = "change_percent_above", "Change % at or above"
        CHANGE_PERCENT_BELOW = "change_percent_below", "Change % at or below"

    class Repeat(models.TextChoices):
        ONCE = "once", "Once"
        REARM = "rearm", "Re-arm"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alerts")
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="alerts")
    condition = models.CharField(max_length=24, choices=Condition.choices)
    threshold = models.DecimalField(max_digits=20, decimal_places=6)
    repeat = models.CharField(max_length=5, choices=Repeat.choices, default=Repeat.ONCE)
    active = models.BooleanField(default=True)
    # False after a firing of a `rearm` alert, until a quote where the condition is false.
    armed = models.BooleanField(default=True)
    state_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["owner_id", "-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(condition__in=["above", "below", "change_percent_above", "change_percent_below"]),
                name="alert_condition_known",
            ),
            models.CheckConstraint(condition=Q(repeat__in=["once", "rearm"]), name="alert_repeat_known"),
        ]
        indexes = [
            # The check's lookups: a batch's quotes against the armed alerts they may fire, and
            # against the disarmed ones they may re-arm, each a range on the threshold.
            models.Index(
                fields=["asset", "condition", "threshold"],
                condition=Q(active=True, armed=True),
                name="alert_fire_lookup",
            ),
            models.Index(
                fields=["asset", "condition", "threshold"],
                condition=Q(active=True, armed=False),
                name="alert_rearm_lookup",
            ),
            models.Index(fields=["owner"], condition=Q(active=True), name="alert_owner_active"),
        ]

    def __str__(self) -> str:
        return f"{self.asset_id} {self.condition} {self.threshold}"


class AlertEvent(models.Model):
    """One firing of an alert, stored before it is pushed: what an offline client catches up on.
    The condition and threshold are kept as they were when it fired."""

    # Both keys are covered by the constraint and indexes below, which lead with them.
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events", db_index=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_events", db_index=False
    )
    condition = models.CharField(max_length=24)
    threshold = models.DecimalField(max_digits=20, decimal_places=6)
    price = models.DecimalField(max_digits=20, decimal_places=6)
    change_percent = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    quoted_at = models.DateTimeField(help_text="The quote time of the quote that fired it.")
    triggered_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)
    # Claimed by the email task before it sends (null: not emailed, or the send failed).
    emailed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-triggered_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["alert", "quoted_at"], name="alertevent_unique_alert_quote")]
        indexes = [
            models.Index(fields=["owner", "-triggered_at"], name="alertevent_owner_recent"),
            models.Index(fields=["owner", "-triggered_at"], condition=Q(read_at=None), name="alertevent_owner_unread"),
        ]

    def __str__(self) -> str:
        return f"alert {self.alert_id} at {self.quoted_at:%Y-%m-%d %H:%M:%S}"
