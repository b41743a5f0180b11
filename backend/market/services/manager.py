"""DataSourceManager: the sources in MARKET_DATA_SOURCES order, each behind its shared rate
limit and circuit breaker; what one source misses, fails or rejects falls through to the next.
A circuit measures the source (connection errors, timeouts, 5xx); data rejected for one symbol
never moves it: that symbol backs off on its own (SymbolBackoff) and its batch-mates flow."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypedDict

import redis
from django.conf import settings

from backend.core.metrics import counter_add
from backend.core.redis import redis_client

from .circuit import CircuitBreaker, CircuitState, SymbolBackoff
from .ratelimit import SharedRateLimit
from .sources.alpha_vantage import AlphaVantageSource
from .sources.base import Answer, Failure, FailureKind, MarketDataSource, QuoteData
from .sources.finnhub import FinnhubSource
from .sources.simulated import SimulatedSource
from .sources.yahoo import YahooSource

logger = logging.getLogger(__name__)


class UnknownSource(ValueError):
    pass


@dataclass
class FetchOutcome:
    quotes: dict[str, QuoteData] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)

    def source_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for quote in self.quotes.values():
            counts[quote.source] = counts.get(quote.source, 0) + 1
        return counts


class SourceHealth(TypedDict):
    name: str
    priority: int
    healthy: bool
    circuit: str
    consecutive_failures: int
    requests_last_minute: int
    requests_per_minute: int
    last_success_at: float | None
    last_failure_at: float | None
    last_error: str


@dataclass
class ManagedSource:
    source: MarketDataSource
    limit: SharedRateLimit
    breaker: CircuitBreaker


# Failure kinds that mean the source itself answered.
SOURCE_ANSWERED = frozenset({FailureKind.NOT_FOUND, FailureKind.REJECTED})


def _health_key(source: str) -> str:
    return f"tf:source:{source}:health"


def combine_failures(failures: Sequence[Failure], *, sources_total: int) -> Failure:
    """One verdict for a symbol no source could price. Unknown only when every configured
    source said so; an outage (may pass) wins over rejected data, which wins over a rate
    limit: a source that answered with unusable data will not answer better on a retry
    seconds later, and the symbol is known to exist."""
    kinds = {f.kind for f in failures}
    message = "; ".join(f.message for f in failures)
    if kinds == {FailureKind.NOT_FOUND} and len(failures) == sources_total:
        return Failure(FailureKind.NOT_FOUND, message)
    if FailureKind.TRANSIENT in kinds or not kinds:
        return Failure(FailureKind.TRANSIENT, message or "no source configured")
    if FailureKind.REJECTED in kinds:
        return Failure(FailureKind.REJECTED, message)
    if FailureKind.RATE_LIMITED in kinds:
        return Failure(FailureKind.RATE_LIMITED, message)
    return Failure(FailureKind.TRANSIENT, message)


def _backoff_update(
    backoff: SymbolBackoff, outcome: FetchOutcome, *, asked: list[str], streaks: dict[str, float]
) -> None:
    """A priced symbol's rejection streak ends; one whose data was rejected backs off longer."""
    backoff.clear([s for s in streaks if s in outcome.quotes])
    rejected = [s for s in asked if s in outcome.failures and outcome.failures[s].kind is FailureKind.REJECTED]
    for symbol, delay in backoff.record_rejected(rejected).items():
        failure = outcome.failures[symbol]
        outcome.failures[symbol] = Failure(failure.kind, f"{failure.message}; next try in {delay:.1f} s")


class DataSourceManager:
    def __init__(self, managed: list[ManagedSource], client: redis.Redis, backoff: SymbolBackoff | None = None) -> None:
        self.managed = managed
        self.client = client
        self.backoff = backoff

    @property
    def names(self) -> list[str]:
        return [m.source.name for m in self.managed]

    def fetch(self, symbols: Sequence[str]) -> FetchOutcome:
        outcome = FetchOutcome()
        remaining = list(dict.fromkeys(symbols))
        streaks = self.backoff.waiting(remaining) if self.backoff else {}
        for symbol, left in streaks.items():
            if left > 0:
                wait = math.ceil(left * 10) / 10
                outcome.failures[symbol] = Failure(FailureKind.REJECTED, f"data rejected; next try in {wait:.1f} s")
        remaining = [s for s in remaining if s not in outcome.failures]
        tried: dict[str, list[Failure]] = {s: [] for s in remaining}
        for managed in self.managed:
            if not remaining:
                break
            name = managed.source.name
            if not managed.breaker.allow():
                skipped = Failure(FailureKind.TRANSIENT, f"{name}: circuit open")
                for symbol in remaining:
                    tried[symbol].append(skipped)
                continue
            answers = self._ask(managed, remaining)
            for symbol in remaining:
                answer = answers.get(symbol) or Failure(FailureKind.TRANSIENT, f"{name}: no answer")
                if isinstance(answer, QuoteData):
                    outcome.quotes[symbol] = answer
                else:
                    tried[symbol].append(answer)
            remaining = [s for s in remaining if s not in outcome.quotes]
        for symbol in remaining:
            outcome.failures[symbol] = combine_failures(tried[symbol], sources_total=len(self.managed))
        if self.backoff is not None:
            _backoff_update(self.backoff, outcome, asked=list(tried), streaks=streaks)
        return outcome

    def _ask(self, managed: ManagedSource, symbols: list[str]) -> dict[str, Answer]:
        name = managed.source.name
        try:
            answers = managed.source.fetch(symbols, permit=managed.limit.acquire)
        except Exception as error:  # a source bug must not sink the batch: fall through
            logger.exception("%s: fetch raised", name)
            answers = {s: Failure(FailureKind.TRANSIENT, f"{name}: {type(error).__name__}") for s in symbols}
        values = list(answers.values())
        counter_add("source_requests", 1, source=name)
        errors = sum(1 for a in values if isinstance(a, Failure) and a.kind is not FailureKind.NOT_FOUND)
        if errors:
            counter_add("source_errors", errors, source=name)
        # The breaker measures the source: any answer from it (a quote, an unknown symbol,
        # data rejected for one symbol) is a success; only a call where it failed outright
        # for every symbol (connection error, timeout, 5xx, a body not in its format, its own
        # rate limit) counts. Our budget refusing a request says nothing about the source.
        useful = any(isinstance(a, QuoteData) or a.kind in SOURCE_ANSWERED for a in values)
        outage = bool(values) and all(isinstance(a, Failure) and a.source_failed for a in values)
        now = time.time()
        if useful:
            managed.breaker.record_success()
            self.client.hset(_health_key(name), mapping={"last_success_at": now})
        elif outage:
            managed.breaker.record_failure()
            first = next(a for a in values if isinstance(a, Failure))
            self.client.hset(_health_key(name), mapping={"last_failure_at": now, "last_error": first.message})
            logger.warning("%s: every symbol of the call failed: %s", name, first.message)
        return answers

    def health(self) -> list[SourceHealth]:
        report: list[SourceHealth] = []
        for priority, managed in enumerate(self.managed, start=1):
            name = managed.source.name
            raw: dict[str, Any] = self.client.hgetall(_health_key(name))  # type: ignore[assignment]
            circuit = managed.breaker.state()
            last_success = float(raw["last_success_at"]) if raw.get("last_success_at") else None
            last_failure = float(raw["last_failure_at"]) if raw.get("last_failure_at") else None
            report.append(
                {
                    "name": name,
                    "priority": priority,
                    "healthy": circuit is CircuitState.CLOSED
                    and (last_failure is None or (last_success is not None and last_success >= last_failure)),
                    "circuit": circuit.value,
                    "consecutive_failures": managed.breaker.failures(),
                    "requests_last_minute": managed.limit.used(),
                    "requests_per_minute": managed.limit.per_minute,
                    "last_success_at": last_success,
                    "last_failure_at": last_failure,
                    "last_error": raw.get("last_error", ""),
                }
            )
        return report


def build_source(name: str) -> MarketDataSource:
    parallel = settings.MARKET_DATA_PARALLEL_REQUESTS
    if name == "yahoo":
        return YahooSource(
            base_url=settings.YAHOO_FINANCE_BASE_URL,
            cookie_url=settings.YAHOO_FINANCE_COOKIE_URL,
            symbols_per_request=settings.YAHOO_SYMBOLS_PER_REQUEST,
            parallel=parallel,
        )
    if name == "alpha_vantage":
        return AlphaVantageSource(
            base_url=settings.ALPHA_VANTAGE_BASE_URL, api_key=settings.ALPHA_VANTAGE_API_KEY, parallel=parallel
        )
    if name == "finnhub":
        return FinnhubSource(base_url=settings.FINNHUB_BASE_URL, api_key=settings.FINNHUB_API_KEY, parallel=parallel)
    if name == "simulated":
        return SimulatedSource()
    raise UnknownSource(
        f"unknown market data source {name!r}; choose from {', '.join(settings.MARKET_DATA_SOURCE_NAMES)}"
    )


def requests_per_minute(name: str) -> int:
    return int(settings.MARKET_DATA_REQUESTS_PER_MINUTE.get(name, 0))


@lru_cache(maxsize=1)
def data_source_manager() -> DataSourceManager:
    """The process's manager (one pooled session per source), built from settings."""
    client = redis_client()
    managed = [
        ManagedSource(
            source=build_source(name),
            limit=SharedRateLimit(client, source=name, per_minute=requests_per_minute(name)),
            breaker=CircuitBreaker(
                client,
                source=name,
                threshold=settings.MARKET_DATA_CIRCUIT_FAILURES,
                cooldown=settings.MARKET_DATA_CIRCUIT_COOLDOWN,
            ),
        )
        for name in settings.MARKET_DATA_SOURCES
    ]
    backoff = SymbolBackoff(client, base=settings.PRICE_RETRY_BACKOFF, cap=float(settings.REALTIME_UPDATE_INTERVAL))
    return DataSourceManager(managed, client, backoff)


def data_sources_health() -> list[SourceHealth]:
    """Per-source health for the status API, in priority order."""
    return data_source_manager().health()


# A forked child must not share the parent's HTTP connections.
os.register_at_fork(after_in_child=data_source_manager.cache_clear)
