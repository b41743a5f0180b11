"""The worker exactly as the Procfile runs it (production settings, no supervisor) survives
Redis restarting under it mid-batch, three times in a row, and prices keep flowing after."""

from __future__ import annotations

import time

import pytest

from backend.market.models import Quote, RefreshRun
from config.embedded import start_redis, stop_redis
from tests.config.test_procfile_live import start
from tests.live import free_port
from tests.tasks.prices_helpers import hold, price_all, wait_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

RESTARTS = 3
OUTAGE_SECONDS = 3
SYMBOLS = [f"R{i}" for i in range(6)]


def finished_after(run_id: int) -> bool:
    return RefreshRun.objects.filter(kind="scheduled", finished_at__isnull=False, pk__gt=run_id).exists()


def test_the_procfile_worker_survives_three_redis_restarts_mid_batch(upstream):
    hold(SYMBOLS)
    price_all(upstream, SYMBOLS, base=10.0)
    upstream.latency = 0.5  # each batch waits on the upstream: restarts land mid-batch
    port = free_port()
    url, server = start_redis(port=port, record=False)
    env = {**upstream.env(("finnhub",)), "REDIS_URL": url, "REALTIME_UPDATE_INTERVAL": "2",
           "REALTIME_BATCH_SIZE": "2", "MARKET_DATA_PARALLEL_REQUESTS": "1"}  # fmt: skip
    worker = start("worker", **env)
    beat = start("beat", **env)
    try:
        worker.wait_for_log("ready.", timeout=60)
        for restart in range(RESTARTS):
            last = RefreshRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
            arrived = len(upstream.arrived["finnhub"])
            wait_for(lambda a=arrived: len(upstream.arrived["finnhub"]) > a, 30, "a batch in flight")  # type: ignore[misc]
            stop_redis(server)
            time.sleep(OUTAGE_SECONDS)
            _, server = start_redis(port=port, record=False)
            assert worker.proc.poll() is None, f"restart {restart + 1}: worker exited\n{worker.log()[-4000:]}"
            wait_for(lambda last=last: finished_after(last), 60, f"a cycle after restart {restart + 1}")  # type: ignore[misc]
        price_all(upstream, SYMBOLS, base=20.0)
        wait_for(lambda: Quote.objects.filter(asset__symbol="R0", price=20).exists(), 30, "prices after the restarts")
        assert worker.proc.poll() is None, worker.log()[-4000:]
        assert beat.proc.poll() is None, beat.log()[-4000:]
    finally:
        worker.stop()
        beat.stop()
        stop_redis(server)
