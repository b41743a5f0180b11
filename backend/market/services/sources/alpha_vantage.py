"""Alpha Vantage GLOBAL_QUOTE: one symbol a request; every field is a string.

A rate-limited answer is HTTP 200 with a `Note` (per minute) or `Information` (per day)
field instead of data; an unknown symbol is an empty "Global Quote" object. A quote whose
price or trading day is unusable is rejected data for that symbol, not a failure of the source.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time
from typing import Any

from .base import (
    Answer,
    Failure,
    FailureKind,
    InvalidQuote,
    PerSymbolSource,
    QuoteData,
    parse_optional_decimal,
    parse_optional_int,
    parse_price,
    rejected,
)

logger = logging.getLogger(__name__)

# GLOBAL_QUOTE gives only the trading day. Intraday it is that day's latest price, so we
# stamp it with the time we fetched it; for a past day, the US close (21:00 UTC).
US_CLOSE_UTC = time(21, 0, tzinfo=UTC)


def parse_alpha_vantage_body(symbol: str, body: Any, *, fetched_at: datetime) -> Answer:
    if not isinstance(body, dict):
        return Failure(FailureKind.TRANSIENT, "alpha_vantage: malformed response")
    if "Note" in body or "Information" in body:
        return Failure(FailureKind.RATE_LIMITED, "alpha_vantage: rate limit (Note/Information)", upstream=True)
    if "Error Message" in body:
        return Failure(FailureKind.NOT_FOUND, "alpha_vantage: error message for this symbol")
    quote = body.get("Global Quote")
    if not isinstance(quote, dict):
        return Failure(FailureKind.TRANSIENT, "alpha_vantage: no Global Quote")
    if not quote:
        return Failure(FailureKind.NOT_FOUND, "alpha_vantage: no such symbol")
    try:
        price = parse_price(quote.get("05. price"))
        day_text = quote.get("07. latest trading day")
        try:
            day = date.fromisoformat(str(day_text))
        except ValueError:
            raise InvalidQuote(f"bad latest trading day {day_text!r}") from None
    except InvalidQuote as error:
        return rejected("alpha_vantage", symbol, error)
    quoted_at = fetched_at.replace(microsecond=0) if day >= fetched_at.date() else datetime.combine(day, US_CLOSE_UTC)
    return QuoteData(
        symbol=symbol,
        price=price,
        source="alpha_vantage",
        quoted_at=quoted_at,
        previous_close=parse_optional_decimal(quote.get("08. previous close"), positive=True),
        change=parse_optional_decimal(quote.get("09. change")),
        change_percent=parse_optional_decimal(quote.get("10. change percent")),
        volume=parse_optional_int(quote.get("06. volume")),
        high=parse_optional_decimal(quote.get("03. high"), positive=True),
        low=parse_optional_decimal(quote.get("04. low"), positive=True),
    )


class AlphaVantageSource(PerSymbolSource):
    name = "alpha_vantage"
    path = "/query"

    def params(self, symbol: str) -> dict[str, str]:
        return {"function": "GLOBAL_QUOTE", "symbol": symbol, "apikey": self.api_key}

    def parse(self, symbol: str, body: Any) -> Answer:
        return parse_alpha_vantage_body(symbol, body, fetched_at=datetime.now(UTC))
