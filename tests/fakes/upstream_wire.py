"""The quote bodies FakeUpstream answers, in each market-data API's real wire format: a Yahoo
`quoteResponse` item, an Alpha Vantage `Global Quote` (every value a string) and a Finnhub
quote, built from one FakeQuote whose fields may be deliberately bad (NaN, -1, "abc", None)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AV_NOTE = (
    "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute and "
    "25 calls per day. Please visit https://www.alphavantage.co/premium/ if you would like to target a higher API "
    "call frequency."
)
AV_INFORMATION = (
    "We have detected your API key as DEMO and our standard API rate limit is 25 requests per day. "
    "Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to instantly remove all "
    "daily rate limits."
)


@dataclass
class FakeQuote:
    price: Any
    previous_close: Any
    volume: Any
    at: int


def yahoo_item(symbol: str, q: FakeQuote) -> dict[str, Any]:
    item: dict[str, Any] = {
        "language": "en-US",
        "region": "US",
        "quoteType": "EQUITY",
        "typeDisp": "Equity",
        "quoteSourceName": "Nasdaq Real Time Price",
        "currency": "USD",
        "exchange": "NMS",
        "marketState": "REGULAR",
        "regularMarketPrice": q.price,
        "regularMarketTime": q.at,
        "regularMarketVolume": q.volume,
        "regularMarketPreviousClose": q.previous_close,
        "symbol": symbol,
    }
    if _number(q.price) and _number(q.previous_close):
        change = q.price - q.previous_close
        item["regularMarketChange"] = change
        item["regularMarketChangePercent"] = change / q.previous_close * 100
        item["regularMarketDayHigh"] = max(q.price, q.previous_close)
        item["regularMarketDayLow"] = min(q.price, q.previous_close)
    if _number(q.price):
        item["marketCap"] = int(q.price * 15_000_000_000)
    return {k: v for k, v in item.items() if v is not None}


def alpha_vantage_global_quote(symbol: str, q: FakeQuote, day: str) -> dict[str, str]:
    """The `Global Quote` object; `day` is the latest trading day as YYYY-MM-DD."""
    return {
        "01. symbol": symbol,
        "02. open": _av(q.previous_close),
        "03. high": _av(max(q.price, q.previous_close) if _number(q.price) and _number(q.previous_close) else q.price),
        "04. low": _av(min(q.price, q.previous_close) if _number(q.price) and _number(q.previous_close) else q.price),
        "05. price": _av(q.price),
        "06. volume": str(q.volume if q.volume is not None else 0),
        "07. latest trading day": day,
        "08. previous close": _av(q.previous_close),
        "09. change": _av(q.price - q.previous_close) if _number(q.price) and _number(q.previous_close) else "",
        "10. change percent": (
            f"{(q.price - q.previous_close) / q.previous_close * 100:.4f}%"
            if _number(q.price) and _number(q.previous_close)
            else ""
        ),
    }


def finnhub_quote(q: FakeQuote) -> dict[str, Any]:
    numeric = _number(q.price) and _number(q.previous_close)
    return {
        "c": q.price,
        "d": q.price - q.previous_close if numeric else None,
        "dp": (q.price - q.previous_close) / q.previous_close * 100 if numeric else None,
        "h": max(q.price, q.previous_close) if numeric else q.price,
        "l": min(q.price, q.previous_close) if numeric else q.price,
        "o": q.previous_close,
        "pc": q.previous_close,
        "t": q.at,
    }


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _av(value: Any) -> str:
    if value is None:
        return ""
    if _number(value):
        return f"{value:.4f}"
    return str(value)


# A New York session in winter: 14:30 to 21:00 UTC, as Yahoo's `currentTradingPeriod` says.
SESSION_OPEN_SECONDS = 14 * 3600 + 30 * 60
SESSION_SECONDS = 6 * 3600 + 30 * 60


def yahoo_chart(symbol: str, bars: list[tuple[int, Any, Any]], *, now: int) -> dict[str, Any]:
    """A v8 `chart` answer for daily bars (`interval=1d`): each bar's timestamp is its session's
    OPEN, the arrays are parallel and hold null for a missing value, `meta` carries today's
    trading period. `bars` are (session open, close, volume)."""
    day = now - now % 86400
    stamps = [at for at, _, _ in bars]
    closes = [close for _, close, _ in bars]
    return {
        "chart": {
            "result": [
                {
                    "meta": {
                        "currency": "USD",
                        "symbol": symbol,
                        "exchangeName": "NMS",
                        "instrumentType": "EQUITY",
                        "firstTradeDate": 345479400,
                        "regularMarketTime": now,
                        "gmtoffset": -18000,
                        "timezone": "EST",
                        "exchangeTimezoneName": "America/New_York",
                        "priceHint": 2,
                        "currentTradingPeriod": {
                            "regular": {
                                "timezone": "EST",
                                "start": day + SESSION_OPEN_SECONDS,
                                "end": day + SESSION_OPEN_SECONDS + SESSION_SECONDS,
                                "gmtoffset": -18000,
                            }
                        },
                        "dataGranularity": "1d",
                        "range": "",
                        "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"],
                    },
                    "timestamp": stamps,
                    "indicators": {
                        "quote": [
                            {
                                "open": closes,
                                "high": closes,
                                "low": closes,
                                "close": closes,
                                "volume": [volume for _, _, volume in bars],
                            }
                        ],
                        "adjclose": [{"adjclose": closes}],
                    },
                }
            ],
            "error": None,
        }
    }


YAHOO_CHART_NOT_FOUND = {
    "chart": {"result": None, "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"}}
}
