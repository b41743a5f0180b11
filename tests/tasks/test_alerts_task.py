"""The alert check in the pipeline step that stores a batch (tasks/prices.py:
stored_batch_complete), run in-process: notifications go out in the batch's one layer
message, after the asset updates; a failing check never holds the prices back; emails are
enqueued after the publish only when ALERTS_EMAIL is on, and a failing send never undoes a
firing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core import mail

from backend.alerts.models import Alert, AlertEvent
from backend.market.models import Asset, Quote
from backend.market.services.refresh import BatchResult
from backend.market.services.sources.base import QuoteData
from backend.realtime.events import Event
from tasks import alerts as alert_tasks
from tasks import prices as price_tasks

pytestmark = pytest.mark.django_db
AT = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[list[Event]]:
    calls: list[list[Event]] = []

    def publish(events):
        calls.append(list(events))
        return len(events)

    monkeypatch.setattr(price_tasks, "publish_batch", publish)
    monkeypatch.setattr(price_tasks, "revaluation_chain", lambda changed: None)
    return calls


@pytest.fixture
def ann() -> User:
    return User.objects.create_user("ann", email="ann@example.com")


def alert(owner: User, symbol: str = "AAPL", condition: str = "above", threshold: str = "150") -> Alert:
    asset, _ = Asset.objects.get_or_create(symbol=symbol)
    return Alert.objects.create(owner=owner, asset=asset, condition=condition, threshold=Decimal(threshold))


def batch(price: str = "151.25", symbol: str = "AAPL") -> BatchResult:
    data = QuoteData(symbol=symbol, price=Decimal(price), source="simulated", quoted_at=AT, change_percent=Decimal(1))
    asset_update: Event = {
        "group": f"asset.{symbol}",
        "type": "asset_update",
        "data": {"symbol": symbol},
        "timestamp": "",
    }
    return BatchResult(stored=[symbol], changed=[symbol], events=[asset_update], quotes=[data])


def test_notifications_join_the_batchs_one_message_after_its_asset_updates(published, ann):
    fired = alert(ann)
    result = batch()
    price_tasks.stored_batch_complete(result)
    (message,) = published
    assert [e["type"] for e in message] == ["asset_update", "notification"]
    notification = message[1]
    assert notification["group"] == f"user.{ann.pk}"
    assert notification["data"]["alert_id"] == fired.pk
    assert notification["data"]["price"] == 151.25
    assert "alerts" in result.stages
    # The same batch again (a redelivered task): stored again, fires nothing.
    price_tasks.stored_batch_complete(batch())
    assert [e["type"] for e in published[1]] == ["asset_update"]
    assert AlertEvent.objects.count() == 1


def test_a_batch_stored_without_its_quotes_is_checked_against_the_stored_ones(published, ann):
    alert(ann)
    Quote.objects.create(
        asset=Asset.objects.get(symbol="AAPL"), price=Decimal(160), source="finnhub_ws", quoted_at=AT, fetched_at=AT
    )
    result = batch()
    result.quotes = []
    price_tasks.stored_batch_complete(result)
    assert [e["type"] for e in published[0]] == ["asset_update", "notification"]
    assert AlertEvent.objects.get().price == Decimal(160)


def test_a_failing_check_is_logged_and_the_prices_are_still_published(published, ann, monkeypatch, caplog):
    alert(ann)

    def broken(**kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(alert_tasks, "alerts_check", broken)
    price_tasks.stored_batch_complete(batch())
    assert [e["type"] for e in published[0]] == ["asset_update"]
    assert "checking the alerts" in caplog.text


def test_emails_are_enqueued_after_the_publish_only_when_alerts_email_is_on(published, ann, monkeypatch, settings):
    alert(ann)
    enqueued: list[dict] = []

    def enqueue(kwargs: dict) -> None:
        enqueued.append(kwargs)
        published.append([])  # marks when, against the publishes

    monkeypatch.setattr(alert_tasks.send_alert_emails, "apply_async", enqueue)
    settings.ALERTS_EMAIL = False
    price_tasks.stored_batch_complete(batch())
    assert enqueued == []
    alert(ann, threshold="100")
    settings.ALERTS_EMAIL = True
    price_tasks.stored_batch_complete(batch("152"))
    (sent,) = enqueued
    assert sent == {"event_ids": [AlertEvent.objects.get(threshold=100).pk]}
    assert [len(m) for m in published] == [2, 2, 0]  # published, then enqueued


def test_the_email_task_sends_and_gives_up_without_touching_the_firing(ann, monkeypatch):
    alert(ann)
    (firing,) = alert_tasks.alerts_check(quotes=batch().quotes).fired
    assert alert_tasks.send_alert_emails.apply(kwargs={"event_ids": [firing.event_id]}).get() == {"sent": 1}
    assert len(mail.outbox) == 1

    def broken(**kwargs):
        raise OSError("smtp down")

    monkeypatch.setattr(alert_tasks, "alert_emails_send", broken)
    outcome = alert_tasks.send_alert_emails.apply(kwargs={"event_ids": [firing.event_id]}).get()
    assert outcome == {"sent": 0, "failed": 1}
    assert AlertEvent.objects.filter(pk=firing.event_id).exists()
