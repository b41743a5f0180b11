"""Coalesced recalculation against the real Redis: every symbol asked for is revalued, once
per runner round, by one runner at a time."""

from __future__ import annotations

import pytest

from backend.market.services.redis_client import redis_client
from backend.portfolios.models import Portfolio
from backend.portfolios.services.coalesce import LOCK, PENDING, PROCESSING, portfolios_revalue_coalesced

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
    assert result.portfolios_valued == 1
    assert valued(three_portfolios["loss"])
    assert not redis_client().exists(PENDING)
    assert not redis_client().exists(PROCESSING)
    assert not redis_client().exists(LOCK)


def test_every_pending_symbol_is_revalued_in_one_round_each_portfolio_once(three_portfolios):
    redis_client().sadd(PENDING, "MSFT", "BRK-A")
    result = portfolios_revalue_coalesced(symbols=["AAPL"])
    assert result is not None
    # AAPL: Gains and Loss; MSFT: Loss; BRK-A: Large -> three portfolios, each valued once.
    assert result.portfolios_valued == 3
    assert result.portfolios_changed == 3
    assert all(valued(p) for p in three_portfolios.values())


def test_symbols_a_dead_runner_was_processing_are_revalued_by_the_next_runner(three_portfolios):
    redis_client().sadd(PROCESSING, "BRK-A")  # the runner died before it committed
    result = portfolios_revalue_coalesced(symbols=["MSFT"])
    assert result is not None
    assert result.portfolios_valued == 2
    assert valued(three_portfolios["large"])
    assert valued(three_portfolios["loss"])
    assert not valued(three_portfolios["gains"])
