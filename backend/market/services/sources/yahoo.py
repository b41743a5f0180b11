"""Yahoo Finance (unofficial): cookie + crumb, then the batched v7 quote endpoint.

Since 2023 the quote endpoint wants a session cookie (set by the cookie URL, whatever its
status) and a crumb from /v1/test/getcrumb. A 401 means the crumb expired: we fetch a new one
once and repeat that request. At most 50 symbols go in one request (more than about 100
errors upstream); a batch's sub-requests run in parallel on the pooled session. An entry
whose price or time is unusable is rejected data for that symbol, not a failure of Yahoo.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from backend.market.currency import InvalidCurrency, currency_normalize

from .base import (
    Answer,
    Failure,
    FailureKind,
    InvalidQuote,
    Permit,
    QuoteData,
    all_failed,
    http_failure,
    http_timeout,
    parse_optional_decimal,
    parse_optional_int,
    parse_price,
    pooled_session,
    rejected,
)

logger = logging.getLogger(__name__)

MAX_SYMBOLS_PER_REQUEST = 50
RATE_LIMITED = Failure(FailureKind.RATE_LIMITED, "yahoo: rate limit reached")


class CrumbUnavailable(Exception):
    pass


@dataclass(frozen=True)
class YahooQuote(QuoteData):
    """A Yahoo quote also names the asset's trading currency (`currency`: ISO 4217 or a minor
    unit such as GBp), which the ingest may store on the asset (backend/market/currency.py)."""

    currency: str | None = None


def _currency(value: Any) -> str | None:
    try:
        return currency_normalize(value) if isinstance(value, str) and value else None
    except InvalidCurrency:
        return None


def parse_yahoo_quote(item: dict[str, Any]) -> QuoteData:
    """One `quoteResponse.result[]` entry; InvalidQuote if its price must not be stored."""
    symbol = str(item.get("symbol") or "").upper()
    price = parse_price(item.get("regularMarketPrice"))
    market_time = item.get("regularMarketTime")
    if isinstance(market_time, bool) or not isinstance(market_time, int | float) or market_time <= 0:
        raise InvalidQuote(f"no regularMarketTime: {market_time!r}")
    return YahooQuote(
        currency=_currency(item.get("currency")),
        symbol=symbol,
        price=price,
        source="yahoo",
        quoted_at=datetime.fromtimestamp(int(market_time), tz=UTC),
        previous_close=parse_optional_decimal(item.get("regularMarketPreviousClose"), positive=True),
        change=parse_optional_decimal(item.get("regularMarketChange")),
        change_percent=parse_optional_decimal(item.get("regularMarketChangePercent")),
        volume=parse_optional_int(item.get("regularMarketVolume")),
        high=parse_optional_decimal(item.get("regularMarketDayHigh"), positive=True),
        low=parse_optional_decimal(item.get("regularMarketDayLow"), positive=True),
        market_cap=parse_optional_int(item.get("marketCap")),
    )


def parse_yahoo_response(symbols: list[str], body: Any) -> dict[str, Answer]:
    """Answers for the symbols of one request: entries Yahoo left out are not found there."""
    try:
        results = body["quoteResponse"]["result"]
        if not isinstance(results, list):
            raise TypeError("result is not a list")
    except (KeyError, TypeError) as error:
        logger.warning("yahoo: malformed quote response: %s", error)
        return all_failed(symbols, Failure(FailureKind.TRANSIENT, "yahoo: malformed response"))
    wanted = set(symbols)
    answers: dict[str, Answer] = {}
    for item in results:
        if not isinstance(item, dict):
            continue
        symbol = str(item.get("symbol") or "").upper()
        if symbol not in wanted:
            continue
        try:
            answers[symbol] = parse_yahoo_quote(item)
        except InvalidQuote as error:
            answers[symbol] = rejected("yahoo", symbol, error)
    for symbol in symbols:
        answers.setdefault(symbol, Failure(FailureKind.NOT_FOUND, "yahoo: no such symbol"))
    return answers


class YahooSource:
    name = "yahoo"

    def __init__(
        self, *, base_url: str, cookie_url: str, symbols_per_request: int = MAX_SYMBOLS_PER_REQUEST, parallel: int = 4
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.cookie_url = cookie_url
        self.symbols_per_request = max(1, min(symbols_per_request, MAX_SYMBOLS_PER_REQUEST))
        self.parallel = max(1, parallel)
        self.session = pooled_session(pool_size=self.parallel)
        self._crumb: str | None = None
        self._crumb_lock = threading.Lock()

    def _new_crumb(self, *, stale: str | None, permit: Permit) -> str:
        # Threads that saw the same expired crumb share one renewal.
        with self._crumb_lock:
            if self._crumb is not None and self._crumb != stale:
                return self._crumb
            if not permit():
                raise CrumbUnavailable("rate limit reached")
            # fc.yahoo.com answers 404 but sets the session cookie: the status does not matter.
            self.session.get(self.cookie_url, timeout=http_timeout(), allow_redirects=True)
            if not permit():
                raise CrumbUnavailable("rate limit reached")
            response = self.session.get(f"{self.base_url}/v1/test/getcrumb", timeout=http_timeout())
            crumb = response.text.strip()
            if response.status_code != 200 or not crumb or "<" in crumb or " " in crumb:
                raise CrumbUnavailable(f"HTTP {response.status_code}")
            self._crumb = crumb
            return crumb

    def _request(self, symbols: list[str], permit: Permit) -> dict[str, Answer]:
        try:
            crumb = self._crumb or self._new_crumb(stale=None, permit=permit)
            for attempt in (1, 2):
                if not permit():
                    return all_failed(symbols, RATE_LIMITED)
                response = self.session.get(
                    f"{self.base_url}/v7/finance/quote",
                    params={"symbols": ",".join(symbols), "crumb": crumb},
                    timeout=http_timeout(),
                )
                if response.status_code == 401 and attempt == 1:
                    crumb = self._new_crumb(stale=crumb, permit=permit)
                    continue
                if response.status_code != 200:
                    return all_failed(symbols, http_failure(self.name, response))
                return parse_yahoo_response(symbols, response.json())
        except CrumbUnavailable as error:
            kind = FailureKind.RATE_LIMITED if "rate limit" in str(error) else FailureKind.TRANSIENT
            return all_failed(symbols, Failure(kind, f"yahoo: no crumb ({error})"))
        except requests.RequestException as error:
            return all_failed(symbols, Failure(FailureKind.TRANSIENT, f"yahoo: {type(error).__name__}"))
        except ValueError:
            return all_failed(symbols, Failure(FailureKind.TRANSIENT, "yahoo: response is not JSON"))
        return all_failed(symbols, Failure(FailureKind.TRANSIENT, "yahoo: HTTP 401 after a new crumb"))

    def fetch(self, symbols: list[str], *, permit: Permit) -> dict[str, Answer]:
        size = self.symbols_per_request
        chunks = [symbols[i : i + size] for i in range(0, len(symbols), size)]
        answers: dict[str, Answer] = {}
        if len(chunks) <= 1 or self.parallel == 1:
            for chunk in chunks:
                answers.update(self._request(chunk, permit))
            return answers
        with ThreadPoolExecutor(max_workers=min(self.parallel, len(chunks)), thread_name_prefix="yahoo") as pool:
            for result in pool.map(lambda chunk: self._request(chunk, permit), chunks):
                answers.update(result)
        return answers
