"""The price pipeline end to end: real Celery workers, real Redis and PostgreSQL, and the
market APIs played by FakeUpstream over HTTP."""

from __future__ import annotations

import math
import signal
import sys
import time
from collections import Counter
from typing import Any

import pytest

from backend.market.models import Asset, PriceHistory, Quote, RefreshRun
from backend.market.services.refresh import prices_refresh_force
from config.celery import app
from tests.live import celery_worker

from .prices_helpers import hold, price_all, run_cycle, wait_for, wait_for_run, worker_env

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

ALL = ("yahoo", "alpha_vantage", "finnhub")


def test_120_tracked_symbols_in_batches_of_50_make_three_fetch_tasks_and_yahoo_never_gets_more_than_50(upstream):
    symbols = [f"T{i:03d}" for i in range(120)]
    hold(symbols)
    price_all(upstream, symbols)
    with celery_worker(**worker_env(upstream, ALL, REALTIME_BATCH_SIZE="50")):
        result = app.send_task("tasks.prices.refresh_prices").get(timeout=30)
        assert len(result["task_ids"]) == 3
        run = wait_for_run(result["run_id"])
    assert (run.batches_total, run.batches_finished, run.symbols_succeeded, run.symbols_failed) == (3, 3, 120, 0)
    assert Quote.objects.filter(source="yahoo").count() == 120
    assert PriceHistory.objects.count() == 120
    sizes = [len(r.symbols) for r in upstream.requests["yahoo"]]
    assert max(sizes) <= 50
    assert sum(sizes) == 120


def test_sources_fall_through_yahoo_500_to_alpha_vantage_then_note_to_finnhub(upstream):
    symbols = ["AAPL", "MSFT"]
    hold(symbols)
    price_all(upstream, symbols)
    upstream.fail("yahoo", 500)
    with celery_worker(**worker_env(upstream, ALL, ALPHA_VANTAGE_REQUESTS_PER_MINUTE="100")):
        run = wait_for_run(run_cycle())
        assert run.source_counts == {"alpha_vantage": 2}
        assert set(Quote.objects.values_list("source", flat=True)) == {"alpha_vantage"}
        upstream.rate_limit("alpha_vantage", "Note")
        price_all(upstream, symbols, base=200.0)
        run = wait_for_run(run_cycle())
        assert run.source_counts == {"finnhub": 2}
    assert set(Quote.objects.values_list("source", flat=True)) == {"finnhub"}
    assert Quote.objects.get(asset__symbol="AAPL").price == 200


def test_a_symbol_every_source_answers_garbage_for_fails_at_once_while_the_rest_completes(upstream):
    hold(["GOOD", "BAD"])
    upstream.set_quote("GOOD", 50.0, previous_close=49.0)
    upstream.set_quote("BAD", math.nan, previous_close=49.0)  # every source answers garbage for it
    env = worker_env(
        upstream, ALL, PRICE_FETCH_MAX_RETRIES="2", PRICE_RETRY_BACKOFF="1", ALPHA_VANTAGE_REQUESTS_PER_MINUTE="100"
    )
    with celery_worker(**env):
        run = wait_for_run(run_cycle())
    assert run.symbols_succeeded == 1
    assert run.symbols_failed == 1
    assert "BAD" in run.errors
    assert Quote.objects.filter(asset__symbol="GOOD").exists()
    assert not Quote.objects.filter(asset__symbol="BAD").exists()
    assert Asset.objects.get(symbol="BAD").tracking_status == Asset.TrackingStatus.FAILING
    # First try plus two retries, only for the failing symbol, spaced by the backoff.
    # Rejected data is the symbol's fault, not the source's: asked once, never retried
    # (an outage still is: test_a_source_outage_is_still_retried_until_the_final_attempt).
    bad_times = [r.at for r in upstream.requests["finnhub"] if "BAD" in r.symbols]
    assert len(bad_times) == 1
    assert [r.symbols for r in upstream.requests["finnhub"]].count(["GOOD"]) == 0


def test_malformed_nan_and_negative_upstream_prices_are_never_stored(upstream):
    hold(["OK", "NEG", "NAN", "TEXT", "ZERO"])
    upstream.set_quote("OK", 12.5, previous_close=12.0)
    upstream.set_quote("NEG", -12.5, previous_close=12.0)
    upstream.set_quote("NAN", math.nan, previous_close=12.0)
    upstream.set_quote("TEXT", "12.5abc", previous_close=12.0)
    upstream.set_quote("ZERO", 0, previous_close=12.0)
    with celery_worker(
        **worker_env(upstream, ALL, PRICE_FETCH_MAX_RETRIES="0", ALPHA_VANTAGE_REQUESTS_PER_MINUTE="100")
    ):
        run = wait_for_run(run_cycle())
    assert list(Quote.objects.values_list("asset__symbol", flat=True)) == ["OK"]
    assert list(PriceHistory.objects.values_list("asset__symbol", flat=True)) == ["OK"]
    assert set(run.errors) == {"NEG", "NAN", "TEXT", "ZERO"}


def test_the_rate_limit_holds_across_two_worker_processes(upstream):
    symbols = [f"R{i:02d}" for i in range(60)]
    hold(symbols)
    price_all(upstream, symbols)
    env = worker_env(
        upstream, ("finnhub",), FINNHUB_REQUESTS_PER_MINUTE="20", REALTIME_BATCH_SIZE="6", PRICE_FETCH_MAX_RETRIES="0"
    )
    with celery_worker("w1", **env) as w1, celery_worker("w2", **env) as w2:
        run = wait_for_run(run_cycle())
        assert "fetch_price_batch" in w1.log()
        assert "fetch_price_batch" in w2.log()
    times = sorted(r.at for r in upstream.requests["finnhub"])
    assert times[-1] - times[0] < 60
    assert len(times) == 20
    assert run.symbols_succeeded == 20
    assert run.symbols_failed == 40


def test_circuit_breaker_opens_then_closes_again_across_cycles(upstream):
    hold(["AAPL"])
    price_all(upstream, ["AAPL"])
    upstream.fail("yahoo", 503)
    env = worker_env(upstream, ("yahoo", "finnhub"), MARKET_DATA_CIRCUIT_FAILURES="2", MARKET_DATA_CIRCUIT_COOLDOWN="3")
    with celery_worker(**env):
        for _ in range(2):
            wait_for_run(run_cycle())
        tried = len(upstream.requests["yahoo"])
        run = wait_for_run(run_cycle())  # open: yahoo is not asked
        assert len(upstream.requests["yahoo"]) == tried
        assert run.source_counts == {"finnhub": 1}
        upstream.recover("yahoo")
        upstream.set_quote("AAPL", 123.0, previous_close=120.0)
        time.sleep(3.2)
        run = wait_for_run(run_cycle())  # half-open: one probe, it works, closed again
        assert run.source_counts == {"yahoo": 1}
        run = wait_for_run(run_cycle())
        assert run.source_counts == {"yahoo": 1}


def test_a_worker_killed_mid_batch_is_redelivered_one_symbol_a_batch_and_every_price_is_stored_once(upstream):
    symbols = [f"K{i}" for i in range(8)]
    hold(symbols)
    price_all(upstream, symbols)
    upstream.latency = 1.0
    env = worker_env(
        upstream,
        ("finnhub",),
        CELERY_VISIBILITY_TIMEOUT="4",
        MARKET_DATA_PARALLEL_REQUESTS="2",
        REALTIME_BATCH_SIZE="8",
    )
    with celery_worker("victim", concurrency=1, **env) as victim:
        result = app.send_task("tasks.prices.refresh_prices").get(timeout=30)
        wait_for(lambda: len(upstream.requests["finnhub"]) >= 2, 20, "first upstream requests")
        victim.stop(sig=signal.SIGKILL)
    assert not Quote.objects.exists()
    upstream.latency = 0.05
    with celery_worker("rescuer", concurrency=1, **env):
        run = wait_for_run(result["run_id"], timeout=90)
    assert run.symbols_succeeded == 8
    # The redelivery goes on one symbol per batch (a symbol may be what killed it).
    assert run.batches_total == run.batches_finished == 8
    assert Quote.objects.count() == 8
    assert sorted(PriceHistory.objects.values_list("asset__symbol", flat=True)) == sorted(symbols)


def test_a_forced_refresh_during_a_cycle_does_not_fetch_the_same_symbols_twice(upstream):
    symbols = [f"F{i:02d}" for i in range(12)]
    hold(symbols)
    price_all(upstream, symbols)
    upstream.latency = 0.3
    env = worker_env(upstream, ("finnhub",), REALTIME_BATCH_SIZE="6", MARKET_DATA_PARALLEL_REQUESTS="1")
    with celery_worker(concurrency=1, **env):
        cycle = app.send_task("tasks.prices.refresh_prices").get(timeout=30)
        wait_for(lambda: upstream.requests["finnhub"], 20, "the cycle's first request")
        forced = prices_refresh_force(symbols=symbols)
        assert sorted(forced.in_flight) == symbols
        assert forced.task_ids == []
        wait_for_run(cycle["run_id"])
        # Once the cycle is done, a forced refresh fetches them again, cache or not.
        again = prices_refresh_force(symbols=symbols[:3])
        wait_for_run(again.run_id)  # type: ignore[arg-type]
    counts = Counter(upstream.symbols_requested("finnhub"))
    assert all(counts[s] == 1 for s in symbols[3:]), counts
    assert all(counts[s] == 2 for s in symbols[:3]), counts
    assert RefreshRun.objects.get(pk=cycle["run_id"]).symbols_succeeded == 12


def test_beat_with_the_database_scheduler_syncs_the_refresh_entry_and_fires_it():
    from django_celery_beat.models import PeriodicTask

    from tests.live import LiveProcess, process_env

    argv = [sys.executable, "-m", "celery", "--app", "config", "beat", "--loglevel", "INFO", "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler", "--pidfile", ""]  # fmt: skip
    beat = LiveProcess("beat", argv, process_env(REALTIME_UPDATE_INTERVAL="1"))
    try:
        wait_for(lambda: PeriodicTask.objects.filter(name="refresh-prices").exists(), 60, "the synced beat entry")
        entry = PeriodicTask.objects.get(name="refresh-prices")
        assert entry.task == "tasks.prices.refresh_prices"
        assert entry.interval is not None
        assert (entry.interval.every, entry.interval.period) == (1, "seconds")
        beat.wait_for_log("Sending due task refresh-prices", timeout=30)
    finally:
        beat.stop()


def test_a_beat_send_carries_its_send_time_to_the_worker_that_judges_the_tick_by_it(upstream):
    # Judged by run time, the second send (run right after the first) would be skipped; judged
    # by the send times this process stamps on publish, the two are 0.8 interval apart.
    hold(["AAA"])
    price_all(upstream, ["AAA"])
    interval = 30.0
    sent = time.time() - 1_000

    def beat_send(at: float) -> dict[str, Any]:
        headers = {"periodic_task_name": "refresh-prices-header-test", "tf_beat_sent_at": at}
        return app.send_task("tasks.prices.refresh_prices", headers=headers).get(timeout=30)

    with celery_worker(**worker_env(upstream, ("finnhub",), REALTIME_UPDATE_INTERVAL=str(int(interval)))):
        first = beat_send(sent)
        assert not first["skipped_locked"]
        wait_for_run(int(first["run_id"]))
        second = beat_send(sent + 0.8 * interval)
        assert not second["skipped_locked"]
        wait_for_run(int(second["run_id"]))
        assert beat_send(sent + 1.0 * interval)["skipped_locked"]
