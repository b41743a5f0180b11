"""DataSourceManager against FakeUpstream over real HTTP, with the rate limit and circuit
state in the real Redis."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.test import override_settings

from backend.market.services.manager import DataSourceManager, data_source_manager, data_sources_health
from backend.market.services.sources.base import FailureKind
from tests.fakes.upstream import FakeUpstream, fake_upstream


@pytest.fixture
def upstream(redis_client) -> Iterator[FakeUpstream]:
    redis_client.flushdb()
    with fake_upstream() as server:
        yield server


def manager(fake: FakeUpstream, *sources: str, **extra: object) -> DataSourceManager:
    env = fake.env(sources)
    overrides: dict[str, object] = {k: v for k, v in env.items() if k != "MARKET_DATA_SOURCES"}
    overrides["MARKET_DATA_SOURCES"] = list(sources)
    overrides.update(extra)
    with override_settings(**overrides):
        data_source_manager.cache_clear()
        built = data_source_manager()
    data_source_manager.cache_clear()
    return built


def test_yahoo_sends_at_most_50_symbols_a_request(upstream):
    symbols = [f"S{i:03d}" for i in range(120)]
    for s in symbols:
        upstream.set_quote(s, 10.5, previous_close=10.0)
    outcome = manager(upstream, "yahoo").fetch(symbols)
    assert set(outcome.quotes) == set(symbols)
    sizes = [len(r.symbols) for r in upstream.requests["yahoo"]]
    assert sorted(sizes) == [20, 50, 50]


def test_yahoo_gets_a_new_crumb_once_on_401(upstream):
    upstream.set_quote("AAPL", 190.0, previous_close=189.0)
    m = manager(upstream, "yahoo")
    assert "AAPL" in m.fetch(["AAPL"]).quotes
    upstream.expire_crumb()
    outcome = m.fetch(["AAPL"])
    assert outcome.quotes["AAPL"].price == Decimal("190.0")
    crumbs = [r for r in upstream.requests["yahoo_crumb"] if r.path.endswith("getcrumb")]
    assert len(crumbs) == 2


def test_fetch_falls_back_to_alpha_vantage_when_yahoo_errors(upstream):
    upstream.set_quote("AAPL", 190.0, previous_close=189.0)
    upstream.fail("yahoo", 500)
    outcome = manager(upstream, "yahoo", "alpha_vantage", "finnhub").fetch(["AAPL"])
    assert outcome.quotes["AAPL"].source == "alpha_vantage"
    assert upstream.requests["finnhub"] == []


def test_alpha_vantage_note_falls_through_to_finnhub(upstream):
    upstream.set_quote("AAPL", 190.0, previous_close=189.0)
    upstream.fail("yahoo", 500)
    upstream.rate_limit("alpha_vantage", "Note")
    outcome = manager(upstream, "yahoo", "alpha_vantage", "finnhub").fetch(["AAPL"])
    assert outcome.quotes["AAPL"].source == "finnhub"


def test_a_symbol_one_source_misses_is_priced_by_the_next(upstream):
    upstream.set_quote("AAPL", 190.0, previous_close=189.0)
    upstream.set_quote("BRK/B", 410.0, previous_close=409.0)
    upstream.hide("yahoo", "BRK/B")
    outcome = manager(upstream, "yahoo", "finnhub").fetch(["AAPL", "BRK/B"])
    assert outcome.quotes["AAPL"].source == "yahoo"
    assert outcome.quotes["BRK/B"].source == "finnhub"


def test_unknown_only_when_every_source_says_so(upstream):
    upstream.fail("finnhub", 503)
    outcome = manager(upstream, "yahoo", "finnhub").fetch(["NOPE"])
    assert outcome.failures["NOPE"].kind is FailureKind.TRANSIENT
    upstream.recover("finnhub")
    outcome = manager(upstream, "yahoo", "alpha_vantage", "finnhub").fetch(["NOPE"])
    assert outcome.failures["NOPE"].kind is FailureKind.NOT_FOUND


@pytest.mark.parametrize("price", [math.nan, -12.5, 0, "12,5", None])
def test_malformed_prices_fall_through_and_are_never_returned(upstream, price):
    upstream.set_quote("BAD", price, previous_close=10.0)
    outcome = manager(upstream, "yahoo", "alpha_vantage", "finnhub").fetch(["BAD"])
    assert outcome.quotes == {}
    assert outcome.failures["BAD"].kind is FailureKind.REJECTED
    assert len(upstream.requests["finnhub"]) == 1


def test_rate_limit_refuses_requests_over_the_budget(upstream):
    for s in ("A", "B", "C", "D", "E"):
        upstream.set_quote(s, 10.0, previous_close=9.0)
    m = manager(upstream, "finnhub", MARKET_DATA_REQUESTS_PER_MINUTE={"finnhub": 3}, MARKET_DATA_PARALLEL_REQUESTS=1)
    outcome = m.fetch(["A", "B", "C", "D", "E"])
    assert len(upstream.requests["finnhub"]) == 3
    assert len(outcome.quotes) == 3
    assert {f.kind for f in outcome.failures.values()} == {FailureKind.RATE_LIMITED}


def test_circuit_opens_after_consecutive_failures_and_closes_after_a_good_probe(upstream):
    upstream.set_quote("AAPL", 190.0, previous_close=189.0)
    upstream.fail("yahoo", 500)
    m = manager(upstream, "yahoo", "finnhub", MARKET_DATA_CIRCUIT_FAILURES=2, MARKET_DATA_CIRCUIT_COOLDOWN=0.5)
    m.fetch(["AAPL"])
    m.fetch(["AAPL"])
    assert m.managed[0].breaker.state() == "open"
    before = len(upstream.requests["yahoo"])
    assert m.fetch(["AAPL"]).quotes["AAPL"].source == "finnhub"
    assert len(upstream.requests["yahoo"]) == before  # skipped while open
    upstream.recover("yahoo")
    time.sleep(0.6)
    assert m.managed[0].breaker.state() == "half_open"
    assert m.fetch(["AAPL"]).quotes["AAPL"].source == "yahoo"
    assert m.managed[0].breaker.state() == "closed"


def test_circuit_opens_when_the_source_itself_answers_429(upstream):
    upstream.set_quote("AAPL", 190.0, previous_close=189.0)
    upstream.rate_limit("finnhub")
    m = manager(upstream, "finnhub", "simulated", MARKET_DATA_CIRCUIT_FAILURES=2, MARKET_DATA_CIRCUIT_COOLDOWN=30)
    first = m.fetch(["AAPL"])
    assert first.quotes["AAPL"].source == "simulated"
    m.fetch(["AAPL"])
    assert m.managed[0].breaker.state() == "open"
    asked = len(upstream.requests["finnhub"])
    m.fetch(["AAPL"])
    assert len(upstream.requests["finnhub"]) == asked  # a refusing source is left alone while open


def test_alpha_vantage_note_counts_against_its_circuit(upstream):
    upstream.set_quote("AAPL", 190.0, previous_close=189.0)
    upstream.rate_limit("alpha_vantage", "Information")
    m = manager(upstream, "alpha_vantage", "finnhub", MARKET_DATA_CIRCUIT_FAILURES=2, MARKET_DATA_CIRCUIT_COOLDOWN=30)
    m.fetch(["AAPL"])
    m.fetch(["AAPL"])
    assert m.managed[0].breaker.state() == "open"


def test_our_own_budget_running_out_never_opens_the_circuit(upstream):
    upstream.set_quote("A", 10.0, previous_close=9.0)
    m = manager(
        upstream,
        "finnhub",
        MARKET_DATA_REQUESTS_PER_MINUTE={"finnhub": 1},
        MARKET_DATA_CIRCUIT_FAILURES=2,
        MARKET_DATA_PARALLEL_REQUESTS=1,
    )
    m.fetch(["A"])
    for _ in range(3):
        refused = m.fetch(["A"])
        assert refused.failures["A"].kind is FailureKind.RATE_LIMITED
    assert len(upstream.requests["finnhub"]) == 1
    assert m.managed[0].breaker.state() == "closed"


def test_health_reports_each_source_in_priority_order(upstream):
    upstream.set_quote("AAPL", 190.0, previous_close=189.0)
    upstream.fail("yahoo", 500)
    overrides = {k: v for k, v in upstream.env(("yahoo", "finnhub")).items() if k != "MARKET_DATA_SOURCES"}
    with override_settings(MARKET_DATA_SOURCES=["yahoo", "finnhub"], **overrides):
        data_source_manager.cache_clear()
        data_source_manager().fetch(["AAPL"])
        health = data_sources_health()
    data_source_manager.cache_clear()
    assert [h["name"] for h in health] == ["yahoo", "finnhub"]
    assert health[0]["healthy"] is False
    assert "HTTP 500" in health[0]["last_error"]
    assert health[1]["healthy"] is True
    assert health[1]["requests_last_minute"] == 1
