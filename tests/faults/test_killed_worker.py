"""A worker killed mid-batch (SIGKILL of its whole process group, as the platform's OOM killer
does) holds nothing back for long: the batch's symbols flow again within 10 s of a worker
being available, for a forced refresh and for a beat cycle whose lock the dead batch held."""

from __future__ import annotations

import signal
import time
from decimal import Decimal

import pytest

from backend.market.models import Quote
from backend.market.services.refresh import prices_refresh_force
from tests.live import celery_worker
from tests.tasks.prices_helpers import hold, price_all, wait_for, worker_env

from .helpers import start_beat

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

SYMBOLS = [f"K{i}" for i in range(10)]


def fresh(base: float) -> bool:
    """Every symbol holds the price `price_all(..., base)` gave it."""
    stored = dict(Quote.objects.filter(asset__symbol__in=SYMBOLS).values_list("asset__symbol", "price"))
    return all(stored.get(s) == Decimal(str(base + i)) for i, s in enumerate(SYMBOLS))


@pytest.mark.parametrize("kind", ["forced", "scheduled"])
def test_a_batch_killed_mid_fetch_frees_its_symbols_within_10_s_of_a_new_worker(upstream, kind):
    hold(SYMBOLS)
    price_all(upstream, SYMBOLS, base=100.0)
    upstream.latency = 3.0  # the batch is in flight, waiting on the upstream, when it dies
    env = worker_env(upstream, ("finnhub",), REALTIME_BATCH_SIZE="10", REALTIME_UPDATE_INTERVAL="2",
                     MARKET_DATA_PARALLEL_REQUESTS="10")  # fmt: skip
    beat = None
    try:
        with celery_worker("victim", concurrency=1, **env) as victim:
            if kind == "scheduled":
                beat = start_beat(**env)  # the beat cycle dispatches the batch and holds the cycle lock
            else:
                prices_refresh_force(symbols=SYMBOLS)
            wait_for(lambda: len(upstream.arrived["finnhub"]) >= len(SYMBOLS), 30, "the batch's requests upstream")
            victim.stop(sig=signal.SIGKILL)
        assert not Quote.objects.filter(asset__symbol__in=SYMBOLS).exists(), "stored before the kill; make it slower"
        time.sleep(1)
        price_all(upstream, SYMBOLS, base=200.0)
        upstream.latency = 0.05
        with celery_worker("heir", concurrency=2, **env):
            available = time.monotonic()
            if beat is None:
                beat = start_beat(**env)  # beat ticks every 2 s, as in the report this answers
            wait_for(lambda: fresh(200.0), 60, "the killed batch's symbols at their new prices")
            took = time.monotonic() - available
    finally:
        if beat is not None:
            beat.stop()
    print(f"\nkilled worker ({kind}): symbols fresh {took:.1f} s after a new worker was available")
    assert took <= 10, f"{took:.1f} s"
