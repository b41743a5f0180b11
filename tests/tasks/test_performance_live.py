"""Daily values on a REAL Celery worker against the real PostgreSQL and Redis: the
end-of-day task (as beat sends it) writes yesterday's and today's rows, and a back-dated
post's re-derivation, enqueued by its receiver after commit, writes the days it changed."""

from __future__ import annotations

import time as clock
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from backend.core.redis import redis_client
from backend.market.models import Asset, PriceHistory, Quote
from backend.performance.models import DailyValue
from backend.portfolios.models import Portfolio
from backend.portfolios.services.transactions import transaction_buy
from config.celery import app
from tasks.history import backfill_marker
from tests.backend.performance.conftest import no_pending_rederivations  # noqa: F401 (autouse)
from tests.live import celery_worker

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
TODAY = datetime.now(UTC).date()


@pytest.fixture(autouse=True)
def _history_kept() -> Iterator[None]:
    # The closes are the test's own: the new holding's one-off history backfill
    # (tasks/history.py) is marked done already, so no simulated bars land mid-test.
    client = redis_client()
    client.set(backfill_marker("AAPL"), "test")
    yield
    client.delete(backfill_marker("AAPL"))


def held(days_ago: int) -> Portfolio:
    asset = Asset.objects.create(symbol="AAPL", tracking_status=Asset.TrackingStatus.TRACKED)
    now = datetime.now(UTC)
    Quote.objects.create(asset=asset, price=Decimal(110), source="test", quoted_at=now, fetched_at=now)
    at = datetime.combine(TODAY - timedelta(days=days_ago), time(20), tzinfo=UTC)
    PriceHistory.objects.create(asset=asset, quoted_at=at, price=Decimal(100), source="test")
    portfolio = Portfolio.objects.create(owner=User.objects.create_user("ann"), name="Main")
    transaction_buy(
        portfolio=portfolio,
        symbol="AAPL",
        quantity=Decimal(2),
        price=Decimal(100),
        fx_rate=Decimal(1),
        executed_at=at - timedelta(hours=1),
    )
    return portfolio


def close(days_ago: int) -> Decimal:
    """The day's close as stored: the last row before the day's end."""
    end = datetime.combine(TODAY - timedelta(days=days_ago - 1), time(0), tzinfo=UTC)
    return PriceHistory.objects.filter(asset__symbol="AAPL", quoted_at__lt=end).latest("quoted_at").price


def values(portfolio: Portfolio) -> dict:
    return dict(DailyValue.objects.filter(portfolio=portfolio).values_list("date", "value"))


def test_the_end_of_day_task_on_a_real_worker_writes_the_rows():
    portfolio = held(3)
    DailyValue.objects.filter(portfolio=portfolio).delete()  # whatever the post's re-derivation left
    with celery_worker():
        result = app.send_task("tasks.performance.close_daily_values").get(timeout=60)
    assert result["day"] == (TODAY - timedelta(days=1)).isoformat()
    stored = values(portfolio)
    assert stored[TODAY] == 2 * Decimal(110)
    assert stored[TODAY - timedelta(days=1)] == 2 * close(1) == 2 * Decimal(100)
    assert min(stored) == TODAY - timedelta(days=3)


def test_a_back_dated_post_is_re_derived_by_the_worker():
    with celery_worker():
        portfolio = held(5)  # its post commits: the receiver enqueues the runner
        deadline = clock.monotonic() + 60
        while len(values(portfolio)) < 6 and clock.monotonic() < deadline:
            clock.sleep(0.2)
    stored = values(portfolio)
    assert sorted(stored) == [TODAY - timedelta(days=n) for n in range(5, -1, -1)]
    assert stored[TODAY - timedelta(days=5)] == 2 * close(5) == 2 * Decimal(100)
