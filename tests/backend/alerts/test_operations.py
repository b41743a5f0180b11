"""Alerts in operations: counts and firings in /metrics, the status API and the status page."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.alerts.models import Alert
from backend.alerts.services.check import alerts_check
from backend.market.models import Asset
from backend.market.services.refresh import BatchResult
from backend.market.services.sources.base import QuoteData
from tasks.alerts import batch_alerts_check
from tasks.prices import batch_publish

from .conftest import make_alert, q

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_old_samples(redis_client):
    redis_client.flushdb()


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_user("ops", password="ops-pass-123", is_staff=True))
    return client


def test_alert_counts_firings_and_check_time_reach_metrics_and_the_status_pages(ann, bob, staff_client):
    make_alert(ann, "AAPL", "above", "100")
    make_alert(bob, "AAPL", "above", "100", repeat="rearm")
    make_alert(bob, "MSFT", "below", "1")
    aapl = Asset.objects.get(symbol="AAPL")
    Alert.objects.create(owner=ann, asset=aapl, condition="below", threshold=1, active=False)
    stored = QuoteData(symbol="AAPL", price=Decimal(120), source="test", quoted_at=q("AAPL", "1", 1).quoted_at)
    result = BatchResult(stored=["AAPL"], quotes=[stored])
    assert len(batch_alerts_check(result)) == 2
    batch_publish(result)  # records the batch's stages, the check's among them
    alerts_check(quotes=[q("AAPL", "121", 2)])  # nothing more: once is done, rearm disarmed

    body = staff_client.get("/metrics").content.decode()
    assert 'tickerflow_alerts{state="active"} 2.0' in body
    assert 'tickerflow_alerts{state="disarmed"} 1.0' in body
    assert 'tickerflow_alerts{state="inactive"} 2.0' in body
    assert 'tickerflow_alert_firings{scope="total"} 2.0' in body
    assert 'tickerflow_alert_firings{scope="unread"} 2.0' in body
    assert "tickerflow_alerts_fired_total 2.0" in body
    assert 'tickerflow_alert_check_ms{quantile="0.5"}' in body

    status = staff_client.get("/api/realtime/status/").json()["alerts"]
    assert (status["active"], status["inactive"], status["firings_last_24h"], status["users_with_active"]) == (
        2,
        2,
        2,
        1,
    )
    assert status["check_latency"]["samples"] == 1
    page = staff_client.get("/status/data/").json()["alerts"]
    assert page["firings_total"] == 2
