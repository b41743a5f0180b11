"""The one interface every market-data source answers through, and strict parsing.

A source answers per symbol: a `QuoteData`, or a `Failure` saying whether the source itself
failed and trying again may help (transient), whether the source refused for now
(rate_limited), whether the source says the symbol does not exist (not_found), or whether the
source answered but this symbol's data is unusable (rejected). Prices that are missing, zero,
negative, NaN or not numbers never become a `QuoteData`: they are logged and reported as
rejected, which says nothing about the source's health (it never moves a circuit).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Protocol

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

logger = logging.getLogger(__name__)


class FailureKind(StrEnum):
    # The source failed (connection error, timeout, 5xx, a body that is not its format).
    TRANSIENT = "transient"
    # The source refused for now (429, Alpha Vantage's Note: `Failure.upstream`) or our
    # shared budget is spent (not the source's fault).
    RATE_LIMITED = "rate_limited"
    # The source says the symbol does not exist.
    NOT_FOUND = "not_found"
    # The source answered, but what it said about this symbol must not be stored (a zero,
    # negative or NaN price, an error for this one symbol). Never counts against the source.
    REJECTED = "rejected"


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    message: str
    # True when the source itself refused (HTTP 429, Alpha Vantage's Note): a rate limit the
    # source imposes counts against its circuit; our own budget running out does not.
    upstream: bool = False

    @property
    def source_failed(self) -> bool:
        """Whether this answer is the source failing (what its circuit breaker counts)."""
        return self.kind is FailureKind.TRANSIENT or (self.kind is FailureKind.RATE_LIMITED and self.upstream)


@dataclass(frozen=True)
class QuoteData:
    symbol: str
    price: Decimal
    source: str
    quoted_at: datetime
    previous_close: Decimal | None = None
    change: Decimal | None = None
    change_percent: Decimal | None = None
    volume: int | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    market_cap: int | None = None


Answer = QuoteData | Failure
# Called before every upstream HTTP request; False means the shared rate limit is spent.
Permit = Callable[[], bool]


class MarketDataSource(Protocol):
    name: str

    def fetch(self, symbols: list[str], *, permit: Permit) -> dict[str, Answer]:
        """Answer every symbol asked for (a missing key counts as a transient failure)."""
        ...


class InvalidQuote(ValueError):
    """An upstream value that must not be stored."""


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise InvalidQuote(f"not a number: {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidQuote(f"not a finite number: {value!r}")
        # repr keeps the shortest exact decimal form of the float the JSON held.
        return Decimal(repr(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        text = value.strip().rstrip("%")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise InvalidQuote(f"not a number: {value!r}") from None
        if not number.is_finite():
            raise InvalidQuote(f"not a finite number: {value!r}")
        return number
    raise InvalidQuote(f"not a number: {value!r}")


def parse_price(value: Any) -> Decimal:
    """A price we may store: a finite number above zero, or InvalidQuote."""
    number = _to_decimal(value)
    if number <= 0:
        raise InvalidQuote(f"price must be above zero: {value!r}")
    return number


def parse_optional_decimal(value: Any, *, positive: bool = False) -> Decimal | None:
    """An optional figure: None (or garbage, logged at debug) becomes None, never a wrong number."""
    if value is None or value == "":
        return None
    try:
        number = _to_decimal(value)
    except InvalidQuote:
        logger.debug("ignoring malformed optional figure %r", value)
        return None
    if positive and number <= 0:
        return None
    return number


def parse_optional_int(value: Any) -> int | None:
    number = parse_optional_decimal(value)
    if number is None or number < 0:
        return None
    return int(number)


def rejected(source: str, symbol: str, error: Exception | str) -> Failure:
    """Log and report an upstream answer for one symbol that must never be stored."""
    logger.warning("%s: rejected quote for %s: %s", source, symbol, error)
    return Failure(FailureKind.REJECTED, f"{source}: rejected quote: {error}")


def http_timeout() -> tuple[float, float]:
    return (settings.MARKET_DATA_CONNECT_TIMEOUT, settings.MARKET_DATA_READ_TIMEOUT)


def pooled_session(*, pool_size: int) -> requests.Session:
    """One session per source per process: keep-alive connections reused across requests."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(pool_size, 2), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Tickerflow/0.1"
    session.headers["Accept"] = "application/json, text/plain, */*"
    return session


def http_failure(source: str, response: requests.Response) -> Failure:
    """What an HTTP error status means for the symbols of that request."""
    if response.status_code == 429:
        return Failure(FailureKind.RATE_LIMITED, f"{source}: HTTP 429", upstream=True)
    return Failure(FailureKind.TRANSIENT, f"{source}: HTTP {response.status_code}")


def all_failed(symbols: list[str], failure: Failure) -> dict[str, Answer]:
    return dict.fromkeys(symbols, failure)


def fetch_each(symbols: list[str], one: Callable[[str], Answer], *, parallel: int, source: str) -> dict[str, Answer]:
    """Per-symbol sources: one request per symbol, `parallel` at a time. After the first
    rate-limited answer the rest are not sent (they would only be refused too)."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Event

    limited = Event()
    refused = Failure(FailureKind.RATE_LIMITED, f"{source}: rate limit reached")

    def guarded(symbol: str) -> Answer:
        if limited.is_set():
            return refused
        answer = one(symbol)
        if isinstance(answer, Failure) and answer.kind is FailureKind.RATE_LIMITED:
            limited.set()
        return answer

    if parallel <= 1 or len(symbols) <= 1:
        return {symbol: guarded(symbol) for symbol in symbols}
    with ThreadPoolExecutor(max_workers=min(parallel, len(symbols)), thread_name_prefix=source) as pool:
        return dict(zip(symbols, pool.map(guarded, symbols), strict=True))


class PerSymbolSource:
    """A source answering one symbol a request with a JSON body (Alpha Vantage, Finnhub):
    the rate-limit permit, the HTTP call and its failures are the same; `params` and `parse`
    are each source's own."""

    name: str
    path: str

    def __init__(self, *, base_url: str, api_key: str, parallel: int = 4) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.parallel = max(1, parallel)
        self.session = pooled_session(pool_size=self.parallel)

    def params(self, symbol: str) -> dict[str, str]:
        raise NotImplementedError

    def parse(self, symbol: str, body: Any) -> Answer:
        raise NotImplementedError

    def _one(self, symbol: str, permit: Permit) -> Answer:
        if not permit():
            return Failure(FailureKind.RATE_LIMITED, f"{self.name}: rate limit reached")
        try:
            response = self.session.get(
                f"{self.base_url}{self.path}", params=self.params(symbol), timeout=http_timeout()
            )
            if response.status_code != 200:
                return http_failure(self.name, response)
            body = response.json()
        except requests.RequestException as error:
            return Failure(FailureKind.TRANSIENT, f"{self.name}: {type(error).__name__}")
        except ValueError:
            return Failure(FailureKind.TRANSIENT, f"{self.name}: response is not JSON")
        return self.parse(symbol, body)

    def fetch(self, symbols: list[str], *, permit: Permit) -> dict[str, Answer]:
        return fetch_each(symbols, lambda s: self._one(s, permit), parallel=self.parallel, source=self.name)
