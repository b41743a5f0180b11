"""The backfill task and its receiver in-process against the fake Yahoo (real PostgreSQL and
Redis): a source that does not answer releases the symbols' markers and is retried, one
that answers leaves them marked; the receiver enqueues only for unmarked symbols."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from django.test import override_settings

from backend.market.models import Asset, PriceHistory
from backend.market.services.manager import data_source_manager
from tasks.history import MAX_RETRIES, backfill_enqueue, backfill_history, backfill_marker
from tests.fakes.upstream import FakeUpstream, fake_upstream

pytestmark = pytest.mark.django_db


@pytest.fixture
def yahoo(redis_client: redis.Redis) -> Iterator[FakeUpstream]:
    redis_client.flushdb()
    with fake_upstream() as server:
        env = {k: v for k, v in server.env(("yahoo",)).items() if k != "MARKET_DATA_SOURCES"}
        with override_settings(MARKET_DATA_SOURCES=["yahoo"], HISTORY_BACKFILL_DAYS=30, **env):
            data_source_manager.cache_clear()
            yield server
    data_source_manager.cache_clear()
    redis_client.flushdb()


def a_week_ago() -> int:
    now = int(datetime.now(UTC).timestamp())
    return now - now % 86400 - 7 * 86400


def test_a_backfill_yahoo_does_not_answer_releases_its_marker_and_is_retried(yahoo, redis_client):
    Asset.objects.create(symbol="AAPL")
    yahoo.set_chart("AAPL", a_week_ago(), [190.5, 191.0])
    yahoo.fail("yahoo", 503)
    result = backfill_history.apply(kwargs={"symbols": ["AAPL"]}).get()
    assert result == {"claimed": 1, "inserted": 0, "failed": 1}
    assert len(yahoo.requests["yahoo_chart"]) == 1 + MAX_RETRIES
    assert redis_client.exists(backfill_marker("AAPL")) == 0  # a later holding tries again
    yahoo.recover("yahoo")
    assert backfill_history.apply(kwargs={"symbols": ["AAPL"]}).get() == {"claimed": 1, "inserted": 2, "failed": 0}
    assert redis_client.exists(backfill_marker("AAPL")) == 1
    assert PriceHistory.objects.filter(asset__symbol="AAPL", source="yahoo").count() == 2


def test_a_symbol_yahoo_has_no_chart_of_stays_marked_and_is_not_asked_again(yahoo, redis_client):
    Asset.objects.create(symbol="NOPE")
    assert backfill_history.apply(kwargs={"symbols": ["NOPE"]}).get() == {"claimed": 1, "inserted": 0, "failed": 0}
    assert backfill_history.apply(kwargs={"symbols": ["NOPE"]}).get()["claimed"] == 0
    assert len(yahoo.requests["yahoo_chart"]) == 1


def test_the_receiver_enqueues_only_for_symbols_not_yet_marked(yahoo, redis_client, django_capture_on_commit_callbacks):
    def queued() -> int:
        return sum(b"backfill_history" in m for m in redis_client.lrange("celery", 0, -1))

    redis_client.set(backfill_marker("AAPL"), "done")
    with django_capture_on_commit_callbacks(execute=True):
        backfill_enqueue(portfolio_id=1, symbols=["AAPL"])
    assert queued() == 0
    with django_capture_on_commit_callbacks(execute=True):
        backfill_enqueue(portfolio_id=1, symbols=["AAPL", "MSFT"])
    assert queued() == 1


def test_a_symbol_whose_history_reaches_back_is_not_fetched_and_is_marked_done(yahoo, redis_client):
    aapl = Asset.objects.create(symbol="AAPL")
    PriceHistory.objects.create(asset=aapl, quoted_at=datetime(2020, 1, 2, 21, tzinfo=UTC), price=100, source="t")
    assert backfill_history.apply(kwargs={"symbols": ["AAPL"]}).get() == {"claimed": 0, "inserted": 0, "failed": 0}
    assert yahoo.requests["yahoo_chart"] == []
    assert redis_client.exists(backfill_marker("AAPL")) == 1  # the next buy enqueues nothing
