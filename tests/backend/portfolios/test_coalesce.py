"""Coalesced revaluation against the real Redis: every symbol asked for is revalued, once
per runner round, by one runner at a time, and each round's result handed over as soon as
the round committed."""

from __future__ import annotations

import threading
import time

import pytest

from backend.core.redis import redis_client
from backend.portfolios.models import Portfolio
from backend.portfolios.services.revaluation import RevalueResult
from backend.portfolios.services.revaluation.coalesce import (
    LOCK,
    PENDING,
    PROCESSING,
    portfolios_revalue_coalesced,
    revaluation_request,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean_keys():
    client = redis_client()
    client.delete(PENDING, PROCESSING, LOCK)
    yield
    client.delete(PENDING, PROCESSING, LOCK)


def valued(portfolio: Portfolio) -> bool:
    portfolio.refresh_from_db()
    return portfolio.valued_at is not None


def test_a_request_made_while_a_runner_works_is_handed_to_it_and_revalued_by_its_next_round(three_portfolios):
    redis_client().set(LOCK, "another-runner", ex=60)
    assert portfolios_revalue_coalesced(symbols=["MSFT"]) is None
    assert not valued(three_portfolios["loss"])
    assert redis_client().smembers(PENDING) == {"MSFT"}

    redis_client().delete(LOCK)  # the other runner finished; its next look finds MSFT pending
    result = portfolios_revalue_coalesced(symbols=[])
    assert result is not None
    assert result.portfolios_revalued == 1
    assert valued(three_portfolios["loss"])
    assert not redis_client().exists(PENDING)
    assert not redis_client().exists(PROCESSING)
    assert not redis_client().exists(LOCK)


def test_every_pending_symbol_is_revalued_in_one_round_each_portfolio_once(three_portfolios):
    redis_client().sadd(PENDING, "MSFT", "BRK-A")
    result = portfolios_revalue_coalesced(symbols=["AAPL"])
    assert result is not None
    # AAPL: Gains and Loss; MSFT: Loss; BRK-A: Large -> three portfolios, each valued once.
    assert result.portfolios_revalued == 3
    assert result.portfolios_changed == 3
    assert all(valued(p) for p in three_portfolios.values())


def test_symbols_a_dead_runner_was_processing_are_revalued_by_the_next_runner(three_portfolios):
    redis_client().sadd(PROCESSING, "BRK-A")  # the runner died before it committed
    result = portfolios_revalue_coalesced(symbols=["MSFT"])
    assert result is not None
    assert result.portfolios_revalued == 2
    assert valued(three_portfolios["large"])
    assert valued(three_portfolios["loss"])
    assert not valued(three_portfolios["gains"])


def test_a_runners_rounds_start_an_interval_apart_and_take_what_arrived_meanwhile(three_portfolios, settings):
    settings.PORTFOLIO_RECALC_INTERVAL = 0.5
    handed: list[object] = []

    def another_batch_finishes() -> None:
        time.sleep(0.1)  # while the runner's first round or its wait is under way
        handed.append(portfolios_revalue_coalesced(symbols=["MSFT"]))

    rounds: list[tuple[float, RevalueResult]] = []

    def on_round(result: RevalueResult) -> None:
        rounds.append((time.monotonic() - started, result))

    other = threading.Thread(target=another_batch_finishes)
    started = time.monotonic()
    other.start()
    result = portfolios_revalue_coalesced(symbols=["AAPL"], on_round=on_round)
    other.join()
    assert handed == [None]  # the other batch's symbols went to this runner
    assert result is not None
    assert result.portfolios_revalued == 3  # round 1: AAPL -> Gains, Loss; round 2: MSFT -> Loss
    assert time.monotonic() - started >= 0.5
    assert not redis_client().exists(PENDING)
    # Each round's result (and its events) as soon as it committed, not after the last round.
    assert [r.portfolios_revalued for _, r in rounds] == [2, 1]
    assert rounds[0][0] < 0.5 <= rounds[1][0]
    assert {e["group"] for e in rounds[0][1].events} >= {f"portfolio.{three_portfolios['gains'].pk}"}
    assert result.events == []  # the total counts; each round's events went to on_round


def test_a_request_asks_for_a_runner_only_when_none_is_at_work(three_portfolios):
    assert revaluation_request(symbols=["AAPL"]) is True
    redis_client().set(LOCK, "a-runner", ex=60)
    assert revaluation_request(symbols=["MSFT"]) is False  # the runner's next round takes it
    assert redis_client().smembers(PENDING) == {"AAPL", "MSFT"}
    assert revaluation_request(symbols=[]) is False
