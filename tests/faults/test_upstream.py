"""Hostile market APIs: a source that hangs past the read timeout, one that answers garbage,
429 storms. No worker starves, the fallback is used, and the circuit state shows in the
staff status API."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.market.models import PriceHistory, Quote
from tests.live import celery_worker, daphne
from tests.tasks.prices_helpers import hold, price_all, run_cycle, wait_for_run, worker_env

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

ALL = ("yahoo", "alpha_vantage", "finnhub")


def test_a_hanging_yahoo_and_a_garbled_alpha_vantage_fall_back_to_finnhub_and_the_open_circuit_shows_in_status(
    upstream,
):
    symbols = ["AAPL", "MSFT", "NVDA"]
    hold(symbols)
    price_all(upstream, symbols)
    upstream.hang("yahoo", 4.0)  # over the 1 s read timeout below
    upstream.garble("alpha_vantage")
    env = worker_env(
        upstream, ALL, MARKET_DATA_READ_TIMEOUT="1", MARKET_DATA_CIRCUIT_FAILURES="2",
        ALPHA_VANTAGE_REQUESTS_PER_MINUTE="100", REALTIME_CACHE_TIMEOUT="1",
    )  # fmt: skip
    durations = []
    with celery_worker(concurrency=1, **env):
        for _ in range(3):
            started = time.monotonic()
            run = wait_for_run(run_cycle(), timeout=60)
            durations.append(time.monotonic() - started)
            assert run.symbols_succeeded == 3, run.errors
            assert run.source_counts == {"finnhub": 3}
            time.sleep(1.1)  # past the quote cache
    staff = User.objects.create_user("ops", is_staff=True)
    client = Client()
    client.force_login(staff)
    with daphne(**env) as (_, port):  # the web process sees the same sources as the workers
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/realtime/status/",
            headers={"Cookie": f"sessionid={client.cookies['sessionid'].value}"},
        )
        with urllib.request.urlopen(request, timeout=15) as response:
            body = json.loads(response.read())
    sources = {s["name"]: s for s in body["price_feed"]["sources"]}
    print(f"\nhanging/garbled: cycles took {[round(d, 1) for d in durations]} s")
    assert (sources["yahoo"]["circuit"], sources["yahoo"]["last_error"]) == ("open", "yahoo: ReadTimeout")
    assert sources["alpha_vantage"]["circuit"] == "open"
    assert sources["finnhub"]["circuit"] == "closed"
    assert set(Quote.objects.values_list("source", flat=True)) == {"finnhub"}
    assert PriceHistory.objects.filter(source="finnhub").count() >= 3
    assert max(durations) < 30, "a hanging source never holds a batch past its time limits"
    # Once open, yahoo is skipped: later cycles do not wait for its timeout.
    assert len(upstream.requests["yahoo"]) <= 3


def test_a_429_storm_on_every_source_fails_the_cycle_fast_and_the_worker_serves_the_next_one(upstream):
    hold(["AAPL", "MSFT"])
    price_all(upstream, ["AAPL", "MSFT"])
    for source in ALL:
        upstream.rate_limit(source, "Note")
    env = worker_env(
        upstream, ALL, PRICE_FETCH_MAX_RETRIES="1", PRICE_RETRY_BACKOFF="1", ALPHA_VANTAGE_REQUESTS_PER_MINUTE="100",
    )  # fmt: skip
    with celery_worker(concurrency=1, **env):
        started = time.monotonic()
        run = wait_for_run(run_cycle(), timeout=60)
        storm = time.monotonic() - started
        assert run.symbols_succeeded == 0
        assert set(run.errors) == {"AAPL", "MSFT"}
        for source in ALL:
            upstream.recover(source)
        # Rate-limited sources may still be cooling down; the fallback order reaches one.
        deadline = time.monotonic() + 60
        while not Quote.objects.exists() and time.monotonic() < deadline:
            wait_for_run(run_cycle(), timeout=60)
            time.sleep(1)
    print(f"\n429 storm: failed cycle in {storm:.1f} s; prices after recovery: {Quote.objects.count()}")
    assert Quote.objects.count() == 2
    assert storm < 30
