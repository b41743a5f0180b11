"""The daily values receivers and tasks, in-process: a back-dated post and a history
backfill ask for a re-derivation once committed, coalesced into one enqueued runner; the
runner and the end-of-day task write the rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import redis
from celery.app.base import Celery
from django.conf import settings
from django.contrib.auth.models import User

from backend.market.models import Asset, PriceHistory, Quote
from backend.market.signals import history_loaded
from backend.performance.models import DailyValue
from backend.performance.services.rederive import PENDING
from backend.portfolios.models import Portfolio
from backend.portfolios.services.transactions import transaction_buy
from tasks import performance as performance_tasks
from tests.backend.performance.conftest import no_pending_rederivations  # noqa: F401 (autouse)

pytestmark = pytest.mark.django_db
RUNNER = "tasks.performance.rederive_daily_values"
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture
def sent(monkeypatch) -> list[str]:
    """Tasks enqueued (by name), instead of reaching the broker."""
    calls: list[str] = []
    monkeypatch.setattr(Celery, "send_task", lambda self, name, args=None, kwargs=None, **kw: calls.append(name))
    return calls


@pytest.fixture
def main() -> Portfolio:
    asset = Asset.objects.create(symbol="AAPL", tracking_status=Asset.TrackingStatus.TRACKED)
    Quote.objects.create(asset=asset, price=Decimal(110), source="test", quoted_at=TODAY, fetched_at=TODAY)
    for n in (1, 5, 9):
        PriceHistory.objects.create(asset=asset, quoted_at=TODAY - timedelta(days=n, hours=3), price=100, source="t")
    return Portfolio.objects.create(owner=User.objects.create_user("ann"), name="Main")


def buy(portfolio: Portfolio, days_ago: int) -> None:
    at = TODAY - timedelta(days=days_ago) + timedelta(hours=15)
    transaction_buy(portfolio=portfolio, symbol="AAPL", quantity=Decimal(1), price=Decimal(100), executed_at=at)


def pending() -> dict[str, str]:
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    try:
        return {str(k): str(v) for k, v in client.hgetall(PENDING).items()}
    finally:
        client.close()


def test_back_dated_posts_ask_once_committed_and_enqueue_one_runner(main, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        buy(main, 3)
    assert pending() == {}  # nothing before the commit
    for callback in callbacks:
        callback()
    with django_capture_on_commit_callbacks(execute=True):
        buy(main, 8)
        buy(main, 2)
    earliest = (TODAY - timedelta(days=8)).date().isoformat()
    assert pending() == {str(main.pk): earliest}
    assert sent.count(RUNNER) == 1
    assert performance_tasks.rederive_daily_values() == {"portfolios_derived": 1, "portfolios_left": 0}
    days = list(DailyValue.objects.filter(portfolio=main).order_by("date").values_list("date", "value"))
    assert days[0] == ((TODAY - timedelta(days=8)).date(), Decimal(100))
    assert days[-1] == (TODAY.date(), Decimal(3) * 110)


def test_a_history_backfill_asks_for_its_holders(main, sent, django_capture_on_commit_callbacks):
    buy(main, 6)
    with django_capture_on_commit_callbacks(execute=True):
        history_loaded.send(sender=Asset, symbols=["AAPL"], since=(TODAY - timedelta(days=4)).date())
    assert pending() == {str(main.pk): (TODAY - timedelta(days=4)).date().isoformat()}
    assert sent.count(RUNNER) == 1


def test_the_end_of_day_task_writes_yesterday_and_today(main):
    buy(main, 6)
    result = performance_tasks.close_daily_values()
    assert result["day"] == (TODAY - timedelta(days=1)).date().isoformat()
    stored = dict(DailyValue.objects.filter(portfolio=main).values_list("date", "value"))
    assert stored[TODAY.date()] == Decimal(110)
    assert stored[(TODAY - timedelta(days=1)).date()] == Decimal(100)
    assert len(stored) == 7  # the days before yesterday filled one by one (none stored yet)


def test_a_post_dated_today_asks_for_nothing(main, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        buy(main, 0)
    assert pending() == {}
    assert RUNNER not in sent
