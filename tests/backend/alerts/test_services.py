"""Alert services: the per-user limit, a new symbol becoming tracked, changes that arm an
alert afresh, marking read, and emails that never undo a firing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend

from backend.alerts.models import Alert, AlertEvent
from backend.alerts.services.alerts import (
    AlertLimitReached,
    alert_create,
    alert_update,
    notification_mark_read,
)
from backend.alerts.services.check import alerts_check
from backend.alerts.services.email import alert_emails_send
from backend.market.models import Asset
from backend.market.signals import price_batches_dispatched
from backend.market.symbols import InvalidSymbol

from .conftest import make_alert, q

pytestmark = pytest.mark.django_db


def test_a_new_symbol_becomes_an_asset_and_its_fetch_is_announced(ann):
    announced: list[list] = []

    def receiver(**kwargs):
        announced.append(kwargs["batches"])

    price_batches_dispatched.connect(receiver, dispatch_uid="test-alerts")
    try:
        alert = alert_create(owner=ann, symbol="nvda", condition="above", threshold=Decimal("900"))
    finally:
        price_batches_dispatched.disconnect(dispatch_uid="test-alerts")
    assert alert.asset.symbol == "NVDA"
    assert Asset.objects.get(symbol="NVDA").tracking_status == Asset.TrackingStatus.PENDING
    assert [symbols for (_, symbols) in announced[0]] == [["NVDA"]]
    assert (alert.repeat, alert.active, alert.armed) == ("once", True, True)


def test_a_malformed_symbol_is_refused(ann):
    with pytest.raises(InvalidSymbol):
        alert_create(owner=ann, symbol="not a symbol!", condition="above", threshold=Decimal(1))
    assert not Alert.objects.exists()


def test_the_limit_counts_active_alerts_only(ann, bob, settings):
    settings.ALERTS_MAX_PER_USER = 2
    first = alert_create(owner=ann, symbol="AAPL", condition="above", threshold=Decimal(1))
    alert_create(owner=ann, symbol="AAPL", condition="below", threshold=Decimal(1))
    with pytest.raises(AlertLimitReached):
        alert_create(owner=ann, symbol="MSFT", condition="above", threshold=Decimal(1))
    alert_create(owner=bob, symbol="MSFT", condition="above", threshold=Decimal(1))  # per user
    alert_update(alert=first, active=False)
    third = alert_create(owner=ann, symbol="MSFT", condition="above", threshold=Decimal(1))
    with pytest.raises(AlertLimitReached):
        alert_update(alert=first, active=True)
    alert_update(alert=third, active=False)
    assert alert_update(alert=first, active=True).active is True


def test_changing_the_threshold_or_switching_it_on_arms_it_afresh(ann):
    alert = make_alert(ann, "AAPL", "above", "100", repeat="rearm")
    alerts_check(quotes=[q("AAPL", "120", 1)])
    alert.refresh_from_db()
    assert (alert.armed, alert.state_at is not None) == (False, True)
    alert = alert_update(alert=alert, repeat="once")  # not a new condition: stays disarmed
    assert alert.armed is False
    alert = alert_update(alert=alert, threshold=Decimal("110"))
    assert (alert.armed, alert.state_at, alert.repeat) == (True, None, "once")
    assert len(alerts_check(quotes=[q("AAPL", "120", 2)]).fired) == 1
    alert.refresh_from_db()
    assert alert.active is False
    alert = alert_update(alert=alert, active=True)
    assert (alert.active, alert.armed) == (True, True)


def test_marking_read_keeps_the_first_time(ann):
    make_alert(ann, "AAPL", "above", "1")
    alerts_check(quotes=[q("AAPL", "2", 1)])
    event = notification_mark_read(event=AlertEvent.objects.get())
    first = event.read_at
    assert first is not None
    assert notification_mark_read(event=AlertEvent.objects.get()).read_at == first


def test_emails_go_once_to_owners_with_an_address(ann, bob):
    make_alert(ann, "AAPL", "above", "100")
    make_alert(bob, "AAPL", "above", "100")  # bob has no address
    fired = alerts_check(quotes=[q("AAPL", "101.25", 1)]).fired
    ids = [f.event_id for f in fired]
    assert alert_emails_send(event_ids=ids) == 1
    assert alert_emails_send(event_ids=ids) == 0  # claimed already: never twice
    (message,) = mail.outbox
    assert message.to == ["ann@example.com"]
    assert "AAPL" in message.subject
    assert "101.25" in message.body


def test_a_failing_email_backend_keeps_the_firing_and_gives_the_claim_back(ann, monkeypatch):
    make_alert(ann, "AAPL", "above", "100")
    (firing,) = alerts_check(quotes=[q("AAPL", "101", 1)]).fired

    def broken(self, messages):
        raise OSError("smtp down")

    monkeypatch.setattr(EmailBackend, "send_messages", broken)
    with pytest.raises(OSError, match="smtp down"):
        alert_emails_send(event_ids=[firing.event_id])
    event = AlertEvent.objects.get()
    assert event.emailed_at is None
    monkeypatch.undo()
    assert alert_emails_send(event_ids=[firing.event_id]) == 1
