"""Finnhub's trade stream: `wss://ws.finnhub.io?token=KEY`.

Out: `{"type":"subscribe","symbol":"AAPL"}` and `{"type":"unsubscribe","symbol":"AAPL"}`.
In: `{"type":"trade","data":[{"s":"AAPL","p":189.95,"t":1700000000123,"v":100,"c":["1"]}]}`
(`t` in milliseconds), `{"type":"ping"}` (a keep-alive that needs no answer) and
`{"type":"error","msg":"..."}`. A frame that is not JSON, and a trade entry without a symbol,
a time or a usable price (missing, zero, negative, NaN), is logged and skipped; the other
entries of the same frame are kept.

Crypto trades on Finnhub's socket are named by exchange and pair (`BINANCE:BTCUSDT`), while a
tracked crypto symbol is Yahoo's `BTC-USD`: CRYPTO_SYMBOLS maps one to the other, both ways
(the frames we send name Finnhub's symbol, the trades it sends come back as ours). Binance's
USDT pairs are the most traded ones Finnhub streams; USDT is a dollar stablecoin, so its price
stands for the dollar price the poll stores. A `-USD` symbol missing from the table is not
streamed (Finnhub would not know it): it stays polled.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings

from backend.market.symbols import InvalidSymbol, symbol_normalize

from ..sources.base import InvalidQuote, parse_optional_int, parse_price
from .base import Parsed, Trade

logger = logging.getLogger(__name__)

# Tracked symbol -> the symbol Finnhub's trade socket uses for it (docs/operations.md,
# "Streaming quotes"). Add a row to stream another pair.
CRYPTO_SYMBOLS: dict[str, str] = {
    "BTC-USD": "BINANCE:BTCUSDT",
    "ETH-USD": "BINANCE:ETHUSDT",
    "SOL-USD": "BINANCE:SOLUSDT",
    "XRP-USD": "BINANCE:XRPUSDT",
    "BNB-USD": "BINANCE:BNBUSDT",
    "DOGE-USD": "BINANCE:DOGEUSDT",
    "ADA-USD": "BINANCE:ADAUSDT",
    "LTC-USD": "BINANCE:LTCUSDT",
}
_OURS = {theirs: ours for ours, theirs in CRYPTO_SYMBOLS.items()}


def finnhub_symbol(symbol: str) -> str:
    """The name Finnhub's socket gives a tracked symbol (a stock keeps its own)."""
    return CRYPTO_SYMBOLS.get(symbol, symbol)


def _trade(entry: Any) -> Trade:
    if not isinstance(entry, dict):
        raise InvalidQuote(f"trade entry is not an object: {str(entry)[:80]!r}")
    try:
        raw = str(entry.get("s") or "")
        symbol = symbol_normalize(_OURS.get(raw, raw))
    except InvalidSymbol as error:
        raise InvalidQuote(f"bad symbol: {error}") from None
    price = parse_price(entry.get("p"))
    stamp = entry.get("t")
    if isinstance(stamp, bool) or not isinstance(stamp, int | float) or not 0 < stamp < 10**14:
        raise InvalidQuote(f"{symbol}: no trade time t: {stamp!r}")
    millis = int(stamp)
    traded_at = datetime.fromtimestamp(millis // 1000, tz=UTC) + timedelta(milliseconds=millis % 1000)
    return Trade(symbol=symbol, price=price, traded_at=traded_at, volume=parse_optional_int(entry.get("v")))


def parse_finnhub_frame(frame: str | bytes) -> Parsed:
    try:
        message = json.loads(frame)
    except ValueError:
        logger.warning("finnhub stream: frame is not JSON, skipped: %r", frame[:120])
        return Parsed(rejected=1)
    kind = message.get("type") if isinstance(message, dict) else None
    if kind == "ping":
        return Parsed(ping=True)
    if kind == "error":
        return Parsed(error=str(message.get("msg") or "unspecified error")[:300])
    if kind != "trade":
        if kind is None:
            logger.warning("finnhub stream: frame without a type, skipped: %r", str(message)[:120])
            return Parsed(rejected=1)
        return Parsed(ignored=True)
    entries = message.get("data")
    if not isinstance(entries, list):
        logger.warning("finnhub stream: trade frame without a data list, skipped: %r", str(message)[:120])
        return Parsed(rejected=1)
    trades: list[Trade] = []
    rejected = 0
    for entry in entries:
        try:
            trades.append(_trade(entry))
        except InvalidQuote as error:
            rejected += 1
            logger.warning("finnhub stream: trade skipped: %s", error)
    return Parsed(trades=tuple(trades), rejected=rejected)


class FinnhubStream:
    name = "finnhub"
    quote_source = "finnhub_ws"

    def __init__(self, *, url: str | None = None, api_key: str | None = None) -> None:
        self.base_url = url if url is not None else settings.FINNHUB_WS_URL
        self.api_key = api_key if api_key is not None else settings.FINNHUB_API_KEY

    def url(self) -> str:
        parts = urlsplit(self.base_url)
        query = "&".join(q for q in (parts.query, urlencode({"token": self.api_key})) if q)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))

    def supports(self, symbol: str) -> bool:
        # Finnhub streams trades of listed instruments; indexes (^GSPC) and Yahoo-style FX
        # pairs (EURUSD=X) are only polled, and so is a crypto pair it has no name for.
        if symbol in CRYPTO_SYMBOLS:
            return True
        return not symbol.startswith("^") and "=" not in symbol and not symbol.endswith("-USD")

    def subscribe_frame(self, symbol: str) -> str:
        return json.dumps({"type": "subscribe", "symbol": finnhub_symbol(symbol)})

    def unsubscribe_frame(self, symbol: str) -> str:
        return json.dumps({"type": "unsubscribe", "symbol": finnhub_symbol(symbol)})

    def ping_reply(self) -> str | None:
        return None

    def parse(self, frame: str | bytes) -> Parsed:
        return parse_finnhub_frame(frame)
