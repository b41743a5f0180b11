"""Workers stopped or crashed under a batch: every price lands exactly once."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest

from backend.market.models import PriceHistory, Quote
from config.celery import app
from tests.fakes.upstream import FakeUpstream
from tests.live import celery_worker
from tests.tasks.prices_helpers import hold, price_all, wait_for, wait_for_run, worker_env

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _slow_batch_env(upstream: FakeUpstream, soft_shutdown: str) -> dict[str, Any]:
    # As the Procfile runs it: SIGTERM becomes Celery's cold shutdown after a soft one. The
    # visibility timeout stays long, so a requeue cannot be mistaken for a redelivery by timeout.
    return worker_env(
        upstream, ("finnhub",), REMAP_SIGTERM="SIGQUIT", CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT=soft_shutdown,
        CELERY_VISIBILITY_TIMEOUT="300", MARKET_DATA_PARALLEL_REQUESTS="2", REALTIME_BATCH_SIZE="8",
    )  # fmt: skip


def _stored_once(symbols: list[str]) -> None:
    assert Quote.objects.count() == len(symbols)
    assert sorted(PriceHistory.objects.values_list("asset__symbol", flat=True)) == sorted(symbols)


def test_sigterm_during_a_batch_longer_than_the_soft_shutdown_requeues_it_and_the_next_worker_stores_each_price_once(
    upstream,
):
    symbols = [f"Q{i}" for i in range(8)]
    hold(symbols)
    price_all(upstream, symbols)
    upstream.latency = 1.5  # 8 symbols, 2 at a time: a 6 s batch against a 2 s soft shutdown
    env = _slow_batch_env(upstream, "2")
    with celery_worker("term", concurrency=1, **env) as victim:
        result = app.send_task("tasks.prices.refresh_prices").get(timeout=30)
        wait_for(lambda: len(upstream.requests["finnhub"]) >= 2, 20, "first upstream requests")
        stopped = time.monotonic()
        victim.stop(sig=signal.SIGTERM, timeout=30)
        stop_seconds = time.monotonic() - stopped
        log = victim.log()
    assert victim.proc.returncode is not None
    assert not Quote.objects.exists(), "the batch finished in place; make it slower"
    upstream.latency = 0.05
    with celery_worker("after-term", concurrency=1, **env):
        run = wait_for_run(result["run_id"], timeout=60)
    recovered = time.monotonic() - stopped
    print(f"\nSIGTERM mid-batch: worker exited in {stop_seconds:.1f} s, run finished {recovered:.1f} s after SIGTERM")
    assert run.symbols_succeeded == 8, run.errors
    _stored_once(symbols)
    assert recovered < 60, "requeued at shutdown, not after the visibility timeout"
    assert "Restoring 1 unacknowledged message" in log


def test_sigterm_during_a_batch_shorter_than_the_soft_shutdown_lets_it_finish_in_place(upstream):
    symbols = [f"P{i}" for i in range(6)]
    hold(symbols)
    price_all(upstream, symbols)
    upstream.latency = 1.0  # a 3 s batch against a 10 s soft shutdown
    env = _slow_batch_env(upstream, "10")
    with celery_worker("term-ok", concurrency=1, **env) as victim:
        result = app.send_task("tasks.prices.refresh_prices").get(timeout=30)
        wait_for(lambda: len(upstream.requests["finnhub"]) >= 2, 20, "first upstream requests")
        victim.stop(sig=signal.SIGTERM, timeout=30)
    run = wait_for_run(result["run_id"], timeout=5)
    assert run.symbols_succeeded == 6
    _stored_once(symbols)


class PoolChildKiller:
    """Plays a symbol whose fetch crashes the process: every time a request for the symbol
    arrives at the fake server, kill -9 the worker's pool child while it waits for the answer
    (no test-only path in the product). On the arrival, not the answer: killed on the answer,
    a fast store could land first."""

    def __init__(self, upstream: FakeUpstream, worker_pid: int, symbol: str) -> None:
        self.upstream, self.worker_pid, self.symbol = upstream, worker_pid, symbol
        self.kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PoolChildKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        seen = 0
        while not self._stop.is_set():
            hits = self.upstream.arrived["finnhub"].count(self.symbol)
            if hits > seen:
                seen = hits
                for child in psutil.Process(self.worker_pid).children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        child.kill()
                        self.kills += 1
            time.sleep(0.01)


def test_a_symbol_that_crashes_its_worker_every_time_stops_at_the_delivery_cap_and_the_other_symbols_flow(upstream):
    good = ["G1", "G2", "G3"]
    hold([*good, "BOOM"])
    price_all(upstream, [*good, "BOOM"])
    # The kill must land while the batch still waits for its answer, even on a loaded machine
    # (0.3 s was not always enough under SQLite).
    upstream.latency = 1.5
    env = worker_env(upstream, ("finnhub",), PRICE_FETCH_MAX_DELIVERIES="2", REALTIME_BATCH_SIZE="1")
    with celery_worker("poisoned", concurrency=1, **env) as worker:
        with PoolChildKiller(upstream, worker.proc.pid, "BOOM") as killer:
            started = time.monotonic()
            result = app.send_task("tasks.prices.refresh_prices").get(timeout=30)
            run = wait_for_run(result["run_id"], timeout=90)
            took = time.monotonic() - started
        assert worker.proc.poll() is None, "the worker's main process survives its pool children"
        log = worker.log()
    print(f"\npoison symbol: {killer.kills} pool children killed, run finished in {took:.1f} s")
    assert upstream.symbols_requested("finnhub").count("BOOM") == 2  # one per delivery, up to the cap
    assert "giving up" in log
    assert run.symbols_succeeded == 3
    assert set(run.errors) == {"BOOM"}
    assert sorted(PriceHistory.objects.values_list("asset__symbol", flat=True)) == sorted(good)


def test_batch_mates_of_a_symbol_that_crashes_its_worker_are_stored_in_the_same_run(upstream):
    good = ["M1", "M2", "M3"]
    hold([*good, "BOOM"])
    price_all(upstream, [*good, "BOOM"])
    upstream.latency = 1.5
    # One batch of four: the first delivery dies with its pool child, the redelivery goes on
    # one symbol per batch, and only BOOM's own batch keeps dying, up to the delivery cap.
    env = worker_env(upstream, ("finnhub",), PRICE_FETCH_MAX_DELIVERIES="2", REALTIME_BATCH_SIZE="4")
    with celery_worker("poisoned-mates", concurrency=1, **env) as worker:
        with PoolChildKiller(upstream, worker.proc.pid, "BOOM") as killer:
            result = app.send_task("tasks.prices.refresh_prices").get(timeout=30)
            run = wait_for_run(result["run_id"], timeout=90)
        log = worker.log()
    print(f"\npoison symbol among batch-mates: {killer.kills} pool children killed; run {run.symbols_succeeded} stored")
    assert "split into 4 single-symbol batches" in log
    assert run.symbols_succeeded == 3, run.errors
    assert set(run.errors) == {"BOOM"}
    assert sorted(PriceHistory.objects.values_list("asset__symbol", flat=True)) == sorted(good)
