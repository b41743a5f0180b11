"""Refresh services in-process (real Redis and database, FakeUpstream over HTTP)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from backend.market.models import Asset, PriceHistory, Quote, RefreshRun
from backend.market.selectors import quote_cached, tracked_symbols
from backend.market.services.claims import CYCLE_LOCK_KEY
from backend.market.services.manager import data_source_manager
from backend.market.services.refresh import price_batch_fetch, prices_refresh_cycle, prices_refresh_force
from backend.realtime.registry import ConnectionInfo
from consumers.registry import NodeRegistry
from tests.fakes.upstream import FakeUpstream, fake_upstream
from tests.tasks.prices_helpers import hold, price_all

pytestmark = pytest.mark.django_db


def live_client_subscribes(symbols: list[str]) -> None:
    """A connection on a live Daphne node, as the push layer's registry records it."""

    async def register() -> None:
        registry = NodeRegistry("test-node")
        info: ConnectionInfo = {
            "connection_id": "c1", "node": "test-node", "user_id": 1, "username": "u", "auth": "token",
            "connected_at": 0.0, "assets": symbols, "portfolios": [],
        }  # fmt: skip
        await registry.heartbeat([])
        await registry.admit(info, limit=5)
        await registry.close()

    asyncio.run(register())


@pytest.fixture
def upstream(redis_client) -> Iterator[FakeUpstream]:
    redis_client.flushdb()
    with fake_upstream() as server:
        env = {k: v for k, v in server.env(("yahoo", "finnhub")).items() if k != "MARKET_DATA_SOURCES"}
        with override_settings(MARKET_DATA_SOURCES=["yahoo", "finnhub"], **env):
            data_source_manager.cache_clear()
            yield server
    data_source_manager.cache_clear()


def fetch(symbols: list[str], **kwargs):
    args = {"run_id": None, "force": True, "task_id": "t1", "attempt": 0, "final_attempt": True, **kwargs}
    return price_batch_fetch(symbols=symbols, **args)


def test_tracked_symbols_are_held_assets_plus_live_subscriptions(redis_client):
    hold(["AAPL", "MSFT"])
    Asset.objects.create(symbol="IDLE")
    Asset.objects.create(symbol="LIVE")
    Asset.objects.create(symbol="GONE", is_active=False)
    live_client_subscribes(["LIVE", "GONE"])
    assert tracked_symbols() == ["AAPL", "LIVE", "MSFT"]


def test_a_symbol_every_source_calls_unknown_is_marked_reported_once_and_skipped_until_reprobe(upstream):
    hold(["AAPL", "NOPE"])
    price_all(upstream, ["AAPL"])
    result = fetch(["AAPL", "NOPE"])
    assert result.unknown == ["NOPE"]
    nope = Asset.objects.get(symbol="NOPE")
    assert nope.tracking_status == Asset.TrackingStatus.UNKNOWN
    assert nope.unknown_since is not None
    assert len(result.events) == 2  # AAPL's asset_update and NOPE's unknown_symbol error
    assert tracked_symbols() == ["AAPL"]
    again = fetch(["NOPE"], task_id="t2")
    assert again.events == []  # reported once, not every time
    Asset.objects.filter(symbol="NOPE").update(
        unknown_since=timezone.now() - timedelta(seconds=settings.PRICE_UNKNOWN_REPROBE_SECONDS + 1)
    )
    assert tracked_symbols() == ["AAPL", "NOPE"]


def test_a_replayed_batch_stores_nothing_twice_and_publishes_only_changes(upstream):
    hold(["AAPL"])
    price_all(upstream, ["AAPL"])
    first = fetch(["AAPL"])
    second = fetch(["AAPL"], task_id="t2")
    assert first.changed == ["AAPL"]
    assert second.stored == ["AAPL"]
    assert second.changed == []
    assert PriceHistory.objects.count() == 1
    assert Quote.objects.count() == 1


def test_run_record_counts_a_redelivered_attempt_once(upstream):
    hold(["AAPL", "MSFT"])
    price_all(upstream, ["AAPL", "MSFT"])
    run = RefreshRun.objects.create(batches_total=1, symbols_requested=2)
    fetch(["AAPL", "MSFT"], run_id=run.pk)
    fetch(["AAPL", "MSFT"], run_id=run.pk)  # same task id and attempt: a redelivery
    run.refresh_from_db()
    assert (run.symbols_succeeded, run.batches_finished) == (2, 1)
    assert run.finished_at is not None
    assert run.source_counts == {"yahoo": 2}


def test_quote_cache_serves_reads_and_is_filled_by_every_store(upstream):
    hold(["AAPL"])
    price_all(upstream, ["AAPL"])
    fetch(["AAPL"])
    cached = cache.get("quote:AAPL")
    assert cached["price"] == Quote.objects.get().price
    Quote.objects.update(price=1)  # the cache answers reads until it expires
    served = quote_cached(symbol="AAPL")
    assert served is not None
    assert served["price"] == cached["price"]


def test_an_unforced_ad_hoc_fetch_uses_the_cache_but_a_forced_one_goes_upstream(upstream):
    hold(["AAPL"])
    price_all(upstream, ["AAPL"])
    fetch(["AAPL"])
    upstream.reset_requests()
    assert fetch(["AAPL"], force=False, task_id="t2").from_cache == ["AAPL"]
    assert upstream.requests["yahoo"] == []
    fetch(["AAPL"], force=True, task_id="t3")
    assert len(upstream.requests["yahoo"]) == 1


def test_a_scheduled_cycle_always_fetches_even_with_a_fresh_cache(upstream):
    hold(["AAPL"])
    price_all(upstream, ["AAPL"])
    fetch(["AAPL"])
    upstream.reset_requests()
    fetch(["AAPL"], run_id=RefreshRun.objects.create().pk, force=False, task_id="t2")
    assert len(upstream.requests["yahoo"]) == 1


def test_a_second_cycle_is_skipped_while_the_first_holds_the_lock(upstream, redis_client):
    hold(["AAPL"])
    first = prices_refresh_cycle()
    second = prices_refresh_cycle()
    assert first.run_id is not None
    assert second.skipped_locked
    assert redis_client.exists(CYCLE_LOCK_KEY)


def test_a_cycle_with_every_batch_attempted_frees_the_lock(upstream, redis_client):
    hold(["AAPL", "MSFT"])
    price_all(upstream, ["AAPL", "MSFT"])
    dispatch = prices_refresh_cycle(batch_size=1)
    for task_id, symbol in zip(dispatch.task_ids, dispatch.symbols, strict=True):
        fetch([symbol], run_id=dispatch.run_id, force=False, task_id=task_id)
    assert not redis_client.exists(CYCLE_LOCK_KEY)
    assert prices_refresh_cycle().run_id is not None


def test_forced_refresh_rejects_a_malformed_symbol_before_dispatching():
    from backend.market.symbols import InvalidSymbol

    with pytest.raises(InvalidSymbol):
        prices_refresh_force(symbols=["AAPL", "no spaces"])
    assert not RefreshRun.objects.exists()


def test_beat_schedule_declares_the_refresh_every_interval():
    entry = settings.CELERY_BEAT_SCHEDULE["refresh-prices"]
    assert entry["task"] == "tasks.prices.refresh_prices"
    assert entry["schedule"] == settings.REALTIME_UPDATE_INTERVAL
    assert settings.PRICE_RETRY_BACKOFF_MAX < settings.CELERY_VISIBILITY_TIMEOUT


def test_price_feed_status_reports_the_last_run_and_each_source(upstream):
    from backend.market.services.status import price_feed_status

    hold(["AAPL"])
    price_all(upstream, ["AAPL"])
    dispatch = prices_refresh_cycle()
    fetch(["AAPL"], run_id=dispatch.run_id, force=False, task_id=dispatch.task_ids[0])
    status = price_feed_status()
    assert status["running"] is True
    assert status["last_run_id"] == dispatch.run_id
    assert [s["name"] for s in status["sources"]] == ["yahoo", "finnhub"]


def test_a_malformed_symbol_in_a_batch_is_recorded_failed_and_the_rest_is_fetched(upstream):
    hold(["AAPL"])
    price_all(upstream, ["AAPL"])
    result = fetch(["AAPL", "not a symbol"])
    assert result.stored == ["AAPL"]
    assert result.failed == {"not a symbol": "malformed symbol"}


@pytest.mark.django_db
def test_a_second_beats_send_of_the_same_tick_is_skipped_but_the_next_tick_runs(redis_client, settings):
    redis_client.flushdb()
    hold(["AAPL"])
    settings.REALTIME_UPDATE_INTERVAL = 0.4
    first = prices_refresh_cycle(beat_entry="refresh-prices")
    assert not first.skipped_locked
    redis_client.delete(CYCLE_LOCK_KEY)  # the first cycle is over; only the tick claim is left
    assert prices_refresh_cycle(beat_entry="refresh-prices").skipped_locked
    assert not prices_refresh_cycle().skipped_locked  # not from beat (a test, a command): no tick claim
    redis_client.delete(CYCLE_LOCK_KEY)
    time.sleep(0.35)  # past three quarters of the interval
    assert not prices_refresh_cycle(beat_entry="refresh-prices").skipped_locked


def test_rejected_data_fails_alone_at_once_and_its_batch_mates_are_stored_without_retry(upstream, redis_client):
    hold(["AAPL", "MSFT", "HALT"])
    price_all(upstream, ["AAPL", "MSFT"])
    upstream.set_quote("HALT", 0, previous_close=10.0)
    result = fetch(["AAPL", "MSFT", "HALT"], attempt=0, final_attempt=False)
    assert sorted(result.stored) == ["AAPL", "MSFT"]
    assert result.retry == []  # nothing holds the batch: no retry of HALT, none of its mates
    assert "rejected quote" in result.failed["HALT"]
    halt = Asset.objects.get(symbol="HALT")
    assert halt.tracking_status == Asset.TrackingStatus.FAILING
    assert "price must be above zero" in halt.last_error
    assert not list(redis_client.scan_iter(match="tf:circuit:*:open_until"))
    assert not list(redis_client.scan_iter(match="tf:inflight:*"))


def test_a_source_outage_is_still_retried_until_the_final_attempt(upstream):
    hold(["AAPL"])
    price_all(upstream, ["AAPL"])
    upstream.fail("yahoo", 500)
    upstream.fail("finnhub", 503)
    result = fetch(["AAPL"], attempt=0, final_attempt=False)
    assert (result.retry, result.failed) == (["AAPL"], {})
    final = fetch(["AAPL"], attempt=3, final_attempt=True)  # the same task, retried: it holds the claim
    assert "HTTP 500" in final.failed["AAPL"]


def test_a_quote_for_a_symbol_with_no_asset_is_counted_failed_not_dropped(upstream):
    price_all(upstream, ["GHOST"])
    run = RefreshRun.objects.create(batches_total=1, symbols_requested=1)
    result = fetch(["GHOST"], run_id=run.pk)
    assert result.stored == []
    assert result.failed == {"GHOST": "quote not stored: no such asset"}
    run.refresh_from_db()
    assert (run.symbols_succeeded, run.symbols_failed) == (0, 1)


def test_a_forced_refresh_of_new_symbols_creates_their_assets_once():
    hold(["AAPL"])
    dispatch = prices_refresh_force(symbols=["newco", "NEWCO", "aapl"])
    assert dispatch.symbols == ["NEWCO", "AAPL"]
    assert Asset.objects.get(symbol="NEWCO").tracking_status == Asset.TrackingStatus.PENDING
    assert Asset.objects.count() == 2
