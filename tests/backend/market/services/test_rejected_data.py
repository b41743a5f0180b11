"""Data a source rejects for one symbol measures that symbol, not the source: no circuit
moves, the symbol backs off on its own and its batch-mates flow. A failure of the source
itself (5xx) still counts. DataSourceManager against FakeUpstream over real HTTP, circuit and
backoff state in the real Redis."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis

from backend.market.services.circuit import CircuitBreaker, SymbolBackoff
from backend.market.services.manager import DataSourceManager, ManagedSource, combine_failures
from backend.market.services.ratelimit import SharedRateLimit
from backend.market.services.sources.base import Answer, Failure, FailureKind, Permit, QuoteData
from tests.backend.market.services.test_manager import manager
from tests.fakes.upstream import FakeUpstream, fake_upstream

ALL = ("yahoo", "alpha_vantage", "finnhub")
NO_BUDGET_LIMIT = {"yahoo": 1000, "alpha_vantage": 1000, "finnhub": 1000}


@pytest.fixture
def upstream(redis_client) -> Iterator[FakeUpstream]:
    redis_client.flushdb()
    with fake_upstream() as server:
        yield server


def circuits(m: DataSourceManager) -> dict[str, tuple[str, int]]:
    return {x.source.name: (x.breaker.state().value, x.breaker.failures()) for x in m.managed}


def backoff(m: DataSourceManager) -> SymbolBackoff:
    assert m.backoff is not None
    return m.backoff


@pytest.mark.parametrize("price", [0, -12.5, math.nan, "abc", None])
def test_a_price_every_source_rejects_moves_no_circuit_however_often_it_is_asked(upstream, price):
    upstream.set_quote("HALT", price, previous_close=10.0)
    m = manager(upstream, *ALL, MARKET_DATA_CIRCUIT_FAILURES=1, MARKET_DATA_REQUESTS_PER_MINUTE=NO_BUDGET_LIMIT)
    for _ in range(6):
        backoff(m).clear(["HALT"])  # ask every source every time, as a retry batch of HALT alone would
        outcome = m.fetch(["HALT"])
        assert outcome.quotes == {}
        assert outcome.failures["HALT"].kind is FailureKind.REJECTED
    assert circuits(m) == {s: ("closed", 0) for s in ALL}
    assert [len(upstream.requests[s]) for s in ALL] == [6, 6, 6]  # each source answered each time


def test_a_500_on_every_source_counts_against_every_circuit(upstream):
    upstream.set_quote("AAPL", 190.0, previous_close=189.0)
    for source in ALL:
        upstream.fail(source, 500)
    m = manager(upstream, *ALL, MARKET_DATA_CIRCUIT_FAILURES=2)
    assert m.fetch(["AAPL"]).failures["AAPL"].kind is FailureKind.TRANSIENT
    assert circuits(m) == {s: ("closed", 1) for s in ALL}
    m.fetch(["AAPL"])
    assert circuits(m) == {s: ("open", 2) for s in ALL}


def test_rejected_data_next_to_a_5xx_source_counts_only_against_that_source(upstream):
    upstream.set_quote("HALT", 0, previous_close=10.0)
    upstream.fail("yahoo", 502)
    m = manager(upstream, *ALL, MARKET_DATA_CIRCUIT_FAILURES=1)
    outcome = m.fetch(["HALT"])
    # An outage may pass, so the verdict stays transient (retried as before).
    assert outcome.failures["HALT"].kind is FailureKind.TRANSIENT
    assert circuits(m) == {"yahoo": ("open", 1), "alpha_vantage": ("closed", 0), "finnhub": ("closed", 0)}


def test_a_half_open_probe_answered_with_only_rejected_data_closes_the_circuit(upstream):
    upstream.set_quote("HALT", 0, previous_close=10.0)
    upstream.fail("yahoo", 503)
    m = manager(upstream, "yahoo", "finnhub", MARKET_DATA_CIRCUIT_FAILURES=1, MARKET_DATA_CIRCUIT_COOLDOWN=0.3)
    m.fetch(["HALT"])
    assert circuits(m)["yahoo"] == ("open", 1)
    upstream.recover("yahoo")
    time.sleep(0.35)
    backoff(m).clear(["HALT"])
    assert m.fetch(["HALT"]).failures["HALT"].kind is FailureKind.REJECTED
    assert circuits(m)["yahoo"] == ("closed", 0)  # Yahoo answered: it is up


def test_a_rejected_symbol_backs_off_alone_and_flows_as_soon_as_a_source_prices_it(upstream):
    upstream.set_quote("AAPL", 190.0, previous_close=189.0)
    upstream.set_quote("HALT", 0, previous_close=10.0)
    m = manager(upstream, "yahoo", "finnhub", PRICE_RETRY_BACKOFF=0.3, REALTIME_UPDATE_INTERVAL=1)
    first = m.fetch(["AAPL", "HALT"])
    assert set(first.quotes) == {"AAPL"}
    assert first.failures["HALT"].kind is FailureKind.REJECTED
    assert first.failures["HALT"].message.endswith("next try in 0.3 s")

    upstream.reset_requests()
    second = m.fetch(["AAPL", "HALT"])  # within HALT's backoff: only AAPL is asked
    assert set(second.quotes) == {"AAPL"}
    assert second.failures["HALT"].kind is FailureKind.REJECTED
    assert upstream.symbols_requested("yahoo") == ["AAPL"]
    assert upstream.requests["finnhub"] == []

    time.sleep(0.35)
    upstream.set_quote("HALT", math.nan, previous_close=10.0)
    assert m.fetch(["HALT"]).failures["HALT"].message.endswith("next try in 0.6 s")  # twice as long
    assert backoff(m).streak("HALT") == 2

    upstream.set_quote("HALT", 12.5, previous_close=10.0)
    time.sleep(0.65)
    assert m.fetch(["HALT"]).quotes["HALT"].source == "yahoo"
    assert backoff(m).streak("HALT") == 0  # a quote ends the streak
    assert circuits(m) == {"yahoo": ("closed", 0), "finnhub": ("closed", 0)}


class Scripted:
    """A source answering from a script: symbol -> price (a QuoteData) or a Failure."""

    def __init__(self, name: str, script: dict[str, float | Failure]) -> None:
        self.name = name
        self.script = script

    def fetch(self, symbols: list[str], *, permit: Permit) -> dict[str, Answer]:
        answers: dict[str, Answer] = {}
        for symbol in symbols:
            scripted = self.script[symbol]
            answers[symbol] = (
                scripted
                if isinstance(scripted, Failure)
                else QuoteData(symbol, Decimal(str(scripted)), self.name, datetime.now(UTC))
            )
        return answers


def scripted_manager(client: redis.Redis, *sources: Scripted) -> DataSourceManager:
    managed = [
        ManagedSource(
            source=s,
            limit=SharedRateLimit(client, source=s.name, per_minute=0),
            breaker=CircuitBreaker(client, source=s.name, threshold=1, cooldown=60),
        )
        for s in sources
    ]
    return DataSourceManager(managed, client, SymbolBackoff(client, base=1, cap=30))


def test_a_symbol_one_source_rejects_is_priced_by_the_next_and_does_not_back_off(redis_client):
    redis_client.flushdb()
    zero = Failure(FailureKind.REJECTED, "first: rejected quote: price must be above zero: 0")
    m = scripted_manager(
        redis_client, Scripted("first", {"HALT": zero, "AAPL": 190.0}), Scripted("second", {"HALT": 12.5})
    )
    outcome = m.fetch(["AAPL", "HALT"])
    assert {s: q.source for s, q in outcome.quotes.items()} == {"AAPL": "first", "HALT": "second"}
    assert circuits(m) == {"first": ("closed", 0), "second": ("closed", 0)}
    assert backoff(m).waiting(["HALT"]) == {}


def test_a_call_answered_with_only_rejected_data_resets_a_failure_count(redis_client):
    redis_client.flushdb()
    outage = Failure(FailureKind.TRANSIENT, "first: HTTP 500")
    rejected = Failure(FailureKind.REJECTED, "first: rejected quote: not a finite number: nan")
    first = Scripted("first", {"HALT": outage})
    m = scripted_manager(redis_client, first, Scripted("second", {"HALT": 12.5}))
    m.managed[0].breaker.threshold = 3
    m.fetch(["HALT"])
    assert circuits(m)["first"] == ("closed", 1)
    first.script["HALT"] = rejected
    m.fetch(["HALT"])
    assert circuits(m)["first"] == ("closed", 0)


def test_the_backoff_doubles_with_each_rejection_in_a_row_up_to_its_cap(redis_client):
    redis_client.flushdb()
    b = SymbolBackoff(redis_client, base=2, cap=5)
    assert [b.record_rejected(["X"])["X"] for _ in range(4)] == [2, 4, 5, 5]
    waiting = b.waiting(["X", "Y"])
    assert set(waiting) == {"X"}
    assert 4 < waiting["X"] <= 5
    assert 0 < redis_client.ttl("tf:rejected:X") <= 3600  # a streak left alone is forgotten
    b.clear(["X"])
    assert b.waiting(["X"]) == {}
    assert b.record_rejected(["X"]) == {"X": 2}


R, N, L, T = FailureKind.REJECTED, FailureKind.NOT_FOUND, FailureKind.RATE_LIMITED, FailureKind.TRANSIENT


@pytest.mark.parametrize(
    ("kinds", "verdict"),
    [
        ((N, N, N), N),  # unknown only when every source says so
        ((R, N, N), R),  # a source knows the symbol: never unknown
        ((R, L, R), R),  # the answered sources' data is unusable: a retry seconds later will not help
        ((R, T, R), T),  # an outage may pass: retried as before
        ((L, N, N), L),
        ((T, N, N), T),
    ],
)
def test_combined_verdict_of_the_sources(kinds, verdict):
    failures = [Failure(kind, f"source{i}: {kind.value}") for i, kind in enumerate(kinds)]
    assert combine_failures(failures, sources_total=3).kind is verdict
