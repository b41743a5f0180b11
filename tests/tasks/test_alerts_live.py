"""Alerts with real processes: a quote fetched and stored by a real Celery worker fires the
alert once (also when the same quote is stored again) and its owner's open connection gets
the `notification`; a firing reaches both tabs of the owner on two Daphne processes and
nobody else. Real Redis and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from backend.alerts.models import Alert, AlertEvent
from backend.alerts.services.alerts import alert_create
from backend.market.models import Asset
from backend.market.services.refresh import BatchResult, prices_refresh_force
from backend.market.services.sources.base import QuoteData
from tasks.prices import stored_batch_complete
from tests.backend.alerts.live_client import Tab
from tests.live import celery_worker, daphne

from .prices_helpers import hold, run_cycle, wait_for_run, worker_env

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
QUOTE_TIME = 1_764_601_200  # one fixed quote time: the same quote each time it is fetched


def user_with_token(name: str) -> tuple[User, str]:
    user = User.objects.create_user(name)
    return user, Token.objects.create(user=user).key


def test_a_fetched_quote_fires_the_alert_once_and_the_owner_gets_it_live(upstream):
    hold(["AAPL", "MSFT"])
    upstream.set_quote("AAPL", 151.5, previous_close=150.0, at=QUOTE_TIME)
    upstream.set_quote("MSFT", 400.0, previous_close=401.0, at=QUOTE_TIME)
    ann, ann_token = user_with_token("ann")
    bob, bob_token = user_with_token("bob")
    mine = alert_create(owner=ann, symbol="AAPL", condition="above", threshold=Decimal("151.25"))
    alert_create(owner=ann, symbol="MSFT", condition="below", threshold=Decimal("300"), repeat="rearm")
    alert_create(owner=bob, symbol="AAPL", condition="above", threshold=Decimal("1000"))
    with (
        daphne() as (_, port),
        celery_worker(**worker_env(upstream, ("yahoo",))),
        Tab(port, ann_token) as ann_tab,
        Tab(port, bob_token) as bob_tab,
    ):
        started = time.monotonic()
        wait_for_run(run_cycle())
        ann_tab.wait(lambda: ann_tab.of_type("notification"), what="notification")
        print(f"cycle dispatched -> notification in the owner's tab: {time.monotonic() - started:.3f} s")
        # The same quote stored again, by the next cycle and by a forced refresh.
        wait_for_run(run_cycle())
        wait_for_run(prices_refresh_force(symbols=["AAPL"]).run_id or 0)
        ann_tab.flush()
        bob_tab.flush()
    (notification,) = ann_tab.of_type("notification")
    data = notification["data"]
    assert (data["kind"], data["alert_id"], data["symbol"], data["price"]) == ("price_alert", mine.pk, "AAPL", 151.5)
    assert data["event_id"] == AlertEvent.objects.get().pk
    assert bob_tab.of_type("notification") == []
    assert AlertEvent.objects.count() == 1
    assert Alert.objects.get(pk=mine.pk).active is False


def _batch(symbol: str, price: str) -> BatchResult:
    quote = QuoteData(symbol=symbol, price=Decimal(price), source="test", quoted_at=datetime.now(UTC))
    return BatchResult(stored=[symbol], quotes=[quote])


def test_a_firing_reaches_both_tabs_of_the_owner_on_two_daphne_processes_and_nobody_else():
    ann, ann_token = user_with_token("ann")
    bob, bob_token = user_with_token("bob")
    Asset.objects.create(symbol="NVDA", tracking_status="tracked")
    mine = alert_create(owner=ann, symbol="NVDA", condition="above", threshold=Decimal("100"), repeat="rearm")
    alert_create(owner=bob, symbol="NVDA", condition="below", threshold=Decimal("50"))
    with (
        daphne() as (_, port_a),
        daphne() as (_, port_b),
        Tab(port_a, ann_token) as ann_a,
        Tab(port_b, ann_token) as ann_b,
        Tab(port_a, bob_token) as bob_a,
        Tab(port_b, bob_token) as bob_b,
    ):
        started = time.monotonic()
        stored_batch_complete(_batch("NVDA", "120.5"))  # stored, checked, published: as a task does
        for tab in (ann_a, ann_b):
            tab.wait(partial(tab.of_type, "notification"), 10, "notification")
        print(f"check + publish -> notification in both tabs: {time.monotonic() - started:.3f} s")
        for tab in (ann_a, ann_b, bob_a, bob_b):
            tab.flush()
    for tab in (ann_a, ann_b):
        (notification,) = tab.of_type("notification")
        assert notification["data"]["alert_id"] == mine.pk
        assert notification["data"]["price"] == 120.5
    assert ann_a.of_type("notification")[0]["timestamp"] == ann_b.of_type("notification")[0]["timestamp"]
    assert bob_a.of_type("notification") == bob_b.of_type("notification") == []
