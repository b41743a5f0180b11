"""Finnhub /api/v1/quote: one symbol a request -> `c d dp h l o pc t`.

An unknown symbol is not an error status: it is `c == 0` with `t == 0`. 429 is the rate limit.
A zero, negative or NaN `c` with a quote time, or an `error` in a 200 answer, is rejected
data for that symbol (not a failure of the source).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .base import (
    Answer,
    Failure,
    FailureKind,
    InvalidQuote,
    PerSymbolSource,
    QuoteData,
    parse_optional_decimal,
    parse_price,
    rejected,
)


def parse_finnhub_body(symbol: str, body: Any) -> Answer:
    if not isinstance(body, dict):
        return Failure(FailureKind.TRANSIENT, "finnhub: malformed response")
    if "error" in body and "c" not in body:
        # An error status is the source's failure (http_failure); an error in a 200 answer
        # is about this symbol.
        return rejected("finnhub", symbol, str(body["error"])[:100])
    if body.get("c") == 0 and body.get("t") == 0:
        return Failure(FailureKind.NOT_FOUND, "finnhub: no such symbol")
    try:
        price = parse_price(body.get("c"))
        stamp = body.get("t")
        if isinstance(stamp, bool) or not isinstance(stamp, int | float) or stamp <= 0:
            raise InvalidQuote(f"no quote time t: {stamp!r}")
    except InvalidQuote as error:
        return rejected("finnhub", symbol, error)
    return QuoteData(
        symbol=symbol,
        price=price,
        source="finnhub",
        quoted_at=datetime.fromtimestamp(int(stamp), tz=UTC),
        previous_close=parse_optional_decimal(body.get("pc"), positive=True),
        change=parse_optional_decimal(body.get("d")),
        change_percent=parse_optional_decimal(body.get("dp")),
        high=parse_optional_decimal(body.get("h"), positive=True),
        low=parse_optional_decimal(body.get("l"), positive=True),
    )


class FinnhubSource(PerSymbolSource):
    name = "finnhub"
    path = "/api/v1/quote"

    def params(self, symbol: str) -> dict[str, str]:
        return {"symbol": symbol, "token": self.api_key}

    def parse(self, symbol: str, body: Any) -> Answer:
        return parse_finnhub_body(symbol, body)
