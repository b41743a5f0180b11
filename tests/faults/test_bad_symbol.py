"""A halted line: one symbol every market API answers with bad data (a zero, then a negative,
then a NaN price over successive cycles) while nine others keep flowing. A real worker
against the real Redis and PostgreSQL and the fake market APIs: the nine never fail, no
source's circuit moves, and once a source gives the bad symbol a sane price again it is
stored within two cycles."""

from __future__ import annotations

import math
import time
from decimal import Decimal

import pytest

from backend.market.models import Asset, Quote
from tests.live import celery_worker
from tests.tasks.prices_helpers import hold, price_all, run_cycle, wait_for_run, worker_env

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

ALL = ("yahoo", "alpha_vantage", "finnhub")
GOOD = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "TSLA", "AMD", "INTC"]
BAD = "HALT"
INTERVAL = 3.0
BAD_PRICES = [0, -4.25, math.nan, 0, -1, math.nan]


def circuit_state(redis_client) -> dict[str, tuple[bool, int]]:
    """Per source: is its circuit open (or was it opened), and its consecutive failures."""
    return {
        s: (
            redis_client.exists(f"tf:circuit:{s}:open_until") == 1,
            int(redis_client.get(f"tf:circuit:{s}:failures") or 0),
        )
        for s in ALL
    }


def test_a_symbol_with_bad_data_on_every_source_fails_alone_and_flows_within_two_cycles_of_a_sane_price(
    upstream, redis_client
):
    hold([*GOOD, BAD])
    env = worker_env(
        upstream, ALL, REALTIME_UPDATE_INTERVAL=str(int(INTERVAL)), MARKET_DATA_CIRCUIT_FAILURES="2",
        PRICE_RETRY_BACKOFF="0.5", ALPHA_VANTAGE_REQUESTS_PER_MINUTE="1000",
    )  # fmt: skip
    others_failed: list[tuple[int, str, str]] = []
    others_not_stored: list[tuple[int, str]] = []
    circuits_seen: list[dict[str, tuple[bool, int]]] = []
    bad_errors: list[str] = []
    with celery_worker(concurrency=2, **env):
        for cycle, bad_price in enumerate(BAD_PRICES):
            started = time.monotonic()
            price_all(upstream, GOOD, base=100.0 + cycle)
            upstream.set_quote(BAD, bad_price, previous_close=50.0)
            run = wait_for_run(run_cycle(), timeout=60)
            others_failed += [(cycle, s, e) for s, e in run.errors.items() if s != BAD]
            stored = {q.asset.symbol: q.price for q in Quote.objects.select_related("asset")}
            others_not_stored += [
                (cycle, s) for i, s in enumerate(GOOD) if stored.get(s) != Decimal(str(100.0 + cycle + i))
            ]
            assert BAD not in stored
            bad_errors.append(run.errors.get(BAD, ""))
            circuits_seen.append(circuit_state(redis_client))
            time.sleep(max(0.0, started + INTERVAL - time.monotonic()))

        # The line reopens: every source gives a sane price again.
        reopened = time.monotonic()
        upstream.set_quote(BAD, 51.25, previous_close=50.0)
        cycles_to_flow = None
        for cycle in range(1, 4):
            started = time.monotonic()
            wait_for_run(run_cycle(), timeout=60)
            if Quote.objects.filter(asset__symbol=BAD, price=Decimal("51.25")).exists():
                cycles_to_flow = cycle
                break
            time.sleep(max(0.0, started + INTERVAL - time.monotonic()))
        seconds_to_flow = time.monotonic() - reopened
        circuits_seen.append(circuit_state(redis_client))

    asked_for_bad = {s: upstream.symbols_requested(s).count(BAD) for s in ALL}
    print(
        f"\nbad symbol on every source over {len(BAD_PRICES)} cycles: failures of the other nine: "
        f"{len(others_failed)}, not stored: {len(others_not_stored)}; circuits (open, failures) after each cycle: "
        f"{circuits_seen}; {BAD} asked per source: {asked_for_bad}; stored again after {cycles_to_flow} "
        f"cycle(s), {seconds_to_flow:.1f} s; its errors: {bad_errors}"
    )
    assert others_failed == []
    assert others_not_stored == []
    assert all(state == {s: (False, 0) for s in ALL} for state in circuits_seen)
    assert not any("circuit open" in e for e in bad_errors)
    assert all("rejected" in e for e in bad_errors)
    # The bad symbol was really asked of every source (not only skipped by its backoff).
    assert all(n >= 2 for n in asked_for_bad.values()), asked_for_bad
    assert cycles_to_flow is not None
    assert cycles_to_flow <= 2
    assert Asset.objects.get(symbol=BAD).tracking_status == Asset.TrackingStatus.TRACKED
