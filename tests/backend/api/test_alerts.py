"""Alerts and notifications REST API: create, list, change, delete; the limit; owner only
(another user's alert or notification is a 404); the offline catch-up."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from backend.alerts.models import Alert, AlertEvent
from backend.alerts.services.check import CheckedQuote, alerts_check

pytestmark = pytest.mark.django_db


def quote(symbol: str, price: str, minute: int, change_percent: str | None = None) -> CheckedQuote:
    cp = None if change_percent is None else Decimal(change_percent)
    return CheckedQuote(symbol, Decimal(price), cp, datetime(2026, 12, 1, 15, minute, tzinfo=UTC))


@pytest.fixture
def ann() -> User:
    return User.objects.create_user("ann", password="pw-ann-123")


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password="pw-bob-123")


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def create(client: APIClient, **body) -> dict:
    answer = client.post("/api/alerts/", {"repeat": "once", **body}, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def test_create_list_change_and_delete_an_alert(ann):
    api = client_for(ann)
    body = create(api, symbol="aapl", condition="above", threshold="225.5", repeat="rearm")
    assert body["symbol"] == "AAPL"
    assert (body["condition"], body["threshold"], body["repeat"]) == ("above", 225.5, "rearm")
    assert (body["active"], body["armed"], body["last_triggered_at"]) == (True, True, None)
    assert body["created_at"].endswith("Z")
    create(api, symbol="MSFT", condition="change_percent_below", threshold=-3)
    listed = api.get("/api/alerts/").json()
    assert [a["symbol"] for a in listed] == ["MSFT", "AAPL"]  # newest first
    assert [a["symbol"] for a in api.get("/api/alerts/?symbol=aapl").json()] == ["AAPL"]
    changed = api.patch(f"/api/alerts/{body['id']}/", {"threshold": "230", "active": False}, format="json")
    assert changed.status_code == 200
    assert (changed.json()["threshold"], changed.json()["active"]) == (230.0, False)
    assert api.get(f"/api/alerts/{body['id']}/").json()["threshold"] == 230.0
    assert api.delete(f"/api/alerts/{body['id']}/").status_code == 204
    assert api.get(f"/api/alerts/{body['id']}/").status_code == 404
    assert Alert.objects.count() == 1


def test_invalid_input_is_a_400(ann):
    api = client_for(ann)
    assert "symbol" in api.post("/api/alerts/", {"symbol": "no way!", "condition": "above", "threshold": 1}).json()
    assert "condition" in api.post("/api/alerts/", {"symbol": "AAPL", "condition": "up", "threshold": 1}).json()
    assert "threshold" in api.post("/api/alerts/", {"symbol": "AAPL", "condition": "above", "threshold": "x"}).json()
    assert (
        "repeat"
        in api.post("/api/alerts/", {"symbol": "AAPL", "condition": "above", "threshold": 1, "repeat": "often"}).json()
    )
    alert = create(api, symbol="AAPL", condition="above", threshold=1)
    assert api.patch(f"/api/alerts/{alert['id']}/", {}, format="json").status_code == 400


def test_the_limit_answers_alert_limit(ann, settings):
    settings.ALERTS_MAX_PER_USER = 2
    api = client_for(ann)
    first = create(api, symbol="AAPL", condition="above", threshold=1)
    create(api, symbol="AAPL", condition="below", threshold=1)
    answer = api.post("/api/alerts/", {"symbol": "MSFT", "condition": "above", "threshold": 1}, format="json")
    assert answer.status_code == 400
    assert answer.json()["error"] == "alert_limit"
    api.patch(f"/api/alerts/{first['id']}/", {"active": False}, format="json")
    create(api, symbol="MSFT", condition="above", threshold=1)
    again = api.patch(f"/api/alerts/{first['id']}/", {"active": True}, format="json")
    assert (again.status_code, again.json()["error"]) == (400, "alert_limit")


def test_another_users_alerts_and_notifications_are_404(ann, bob):
    mine = create(client_for(ann), symbol="AAPL", condition="above", threshold=100)
    alerts_check(quotes=[quote("AAPL", "101", 1)])
    event_id = AlertEvent.objects.get().pk
    theirs = client_for(bob)
    assert theirs.get(f"/api/alerts/{mine['id']}/").status_code == 404
    assert theirs.patch(f"/api/alerts/{mine['id']}/", {"threshold": 1}, format="json").status_code == 404
    assert theirs.delete(f"/api/alerts/{mine['id']}/").status_code == 404
    assert theirs.post(f"/api/notifications/{event_id}/read/").status_code == 404
    assert theirs.get("/api/alerts/").json() == []
    assert theirs.get("/api/notifications/").json() == []
    assert Alert.objects.filter(pk=mine["id"]).exists()
    assert AlertEvent.objects.get().read_at is None
    assert client_for(ann).get("/api/alerts/999999/").status_code == 404
    assert APIClient().get("/api/alerts/").status_code in {401, 403}


def test_an_offline_client_catches_up_then_marks_read(ann):
    api = client_for(ann)
    aapl = create(api, symbol="AAPL", condition="above", threshold=100, repeat="rearm")
    create(api, symbol="MSFT", condition="change_percent_below", threshold=-2)
    # Fired while no client was connected.
    alerts_check(quotes=[quote("AAPL", "101", 1), quote("MSFT", "300", 1, change_percent="-2.5")])
    alerts_check(quotes=[quote("AAPL", "99", 2)])
    alerts_check(quotes=[quote("AAPL", "102.5", 3)])
    unread = api.get("/api/notifications/?unread=true").json()
    assert len(unread) == 3
    assert [n["event_id"] for n in unread] == sorted((n["event_id"] for n in unread), reverse=True)
    newest = unread[0]
    assert newest["kind"] == "price_alert"
    assert (newest["alert_id"], newest["symbol"], newest["price"], newest["threshold"]) == (
        aapl["id"],
        "AAPL",
        102.5,
        100,
    )
    assert (newest["quoted_at"], newest["read_at"]) == ("2026-12-01T15:03:00Z", None)
    assert "102.5" in newest["message"]
    read = api.post(f"/api/notifications/{newest['event_id']}/read/")
    assert read.status_code == 200
    assert read.json()["read_at"] is not None
    assert [n["event_id"] for n in api.get("/api/notifications/?unread=true").json()] == [
        n["event_id"] for n in unread[1:]
    ]
    everything = api.get("/api/notifications/").json()
    assert len(everything) == 3
    assert everything[0]["read_at"] is not None
    assert api.get(f"/api/alerts/{aapl['id']}/").json()["last_triggered_at"] is not None
