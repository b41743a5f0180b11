"""PostgreSQL unreachable from the worker during a cycle (a TcpProxy we cut): the batch
retries, nothing is half-written, and the prices land once the database is back."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from backend.market.models import PriceHistory, Quote, RefreshRun
from config.celery import app
from tests.backend.ops.test_health_live import proxied_database
from tests.live import celery_worker
from tests.tasks.prices_helpers import hold, price_all, wait_for, wait_for_run, worker_env

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs a networked database (PostgreSQL)"),
]

OUTAGE_SECONDS = 4


def test_the_database_cut_mid_batch_retries_writes_nothing_half_and_every_price_lands_once_after_restore(upstream):
    symbols = [f"D{i}" for i in range(6)]
    hold(symbols)
    price_all(upstream, symbols)
    upstream.latency = 1.0  # 6 symbols 2 at a time: the batch is still fetching when the database goes
    with proxied_database() as (proxy, url):
        env = worker_env(
            upstream, ("finnhub",), DATABASE_URL=url, PRICE_RETRY_BACKOFF="1", PRICE_FETCH_MAX_RETRIES="6",
            MARKET_DATA_PARALLEL_REQUESTS="2", REALTIME_BATCH_SIZE="6", CONN_MAX_AGE="60",
        )  # fmt: skip
        with celery_worker("db-cut", concurrency=1, **env) as worker:
            result = app.send_task("tasks.prices.refresh_prices").get(timeout=30)
            wait_for(lambda: len(upstream.requests["finnhub"]) >= 1, 20, "the batch's first upstream request")
            proxy.cut()
            cut_at = time.monotonic()
            time.sleep(OUTAGE_SECONDS)
            # Nothing of the batch got in while the worker could not reach the database.
            assert not Quote.objects.exists()
            assert not PriceHistory.objects.exists()
            upstream.latency = 0.05
            proxy.restore()
            run = wait_for_run(result["run_id"], timeout=60)
            recovered = time.monotonic() - cut_at
            log = worker.log()
    print(f"\ndatabase cut: run finished {recovered:.1f} s after the cut ({OUTAGE_SECONDS} s outage)")
    assert "retrying" in log, log[-3000:]
    assert run.symbols_succeeded == 6, run.errors
    assert run.batches_finished == run.batches_total == 1
    assert Quote.objects.count() == 6
    assert sorted(PriceHistory.objects.values_list("asset__symbol", flat=True)) == sorted(symbols)
    assert RefreshRun.objects.get(pk=run.pk).symbols_failed == 0
