"""A flush of conflated trades stored like a fetched batch: quote rows built from the last
trade of each symbol and the stored quote, written by `ingest.quotes_store` (which refuses
to replace a newer quote with an older one), returned as a `BatchResult` with the events of
what changed. Publishing and the revaluation are the caller's (tasks/stream.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal

from backend.market.models import Quote
from backend.realtime.events import asset_event

from ..ingest import quotes_store
from ..refresh import BatchResult
from ..sources.base import QuoteData
from .base import Trade

# The stored figures a trade does not carry, read from the symbol's quote.
_KEPT = ("previous_close", "volume", "high", "low", "market_cap")


def trade_quote(trade: Trade, *, source: str, stored: dict[str, object] | None) -> QuoteData:
    """The quote a trade makes: its price and time; the change from the stored previous
    close (in Decimal); volume, high, low and market cap as stored (the poll refreshes them)."""
    kept = dict(stored or dict.fromkeys(_KEPT))
    previous_close = kept["previous_close"]
    change = percent = None
    if isinstance(previous_close, Decimal) and previous_close > 0:
        change = trade.price - previous_close
        percent = change * 100 / previous_close
    return QuoteData(
        symbol=trade.symbol,
        price=trade.price,
        source=source,
        quoted_at=trade.traded_at,
        previous_close=previous_close if isinstance(previous_close, Decimal) else None,
        change=change,
        change_percent=percent,
        volume=kept["volume"] if isinstance(kept["volume"], int) else None,
        high=kept["high"] if isinstance(kept["high"], Decimal) else None,
        low=kept["low"] if isinstance(kept["low"], Decimal) else None,
        market_cap=kept["market_cap"] if isinstance(kept["market_cap"], int) else None,
    )


def stream_trades_store(*, trades: Sequence[Trade], source: str) -> BatchResult:
    """Store one flush (at most one trade per symbol: the latest wins here too). A trade
    older than the stored quote is `stale` and not written; one for a symbol with no asset
    is `failed`. The events are the `asset_update` of every symbol whose price changed."""
    result = BatchResult()
    latest: dict[str, Trade] = {}
    for trade in trades:
        if trade.symbol not in latest or latest[trade.symbol].traded_at <= trade.traded_at:
            latest[trade.symbol] = trade
    if not latest:
        return result
    started = time.perf_counter()
    stored = {
        row["asset__symbol"]: row
        for row in Quote.objects.filter(asset__symbol__in=list(latest)).values("asset__symbol", *_KEPT)
    }
    quotes = [trade_quote(t, source=source, stored=stored.get(s)) for s, t in latest.items()]
    outcome = quotes_store(quotes=quotes, refresh_older=False)
    result.stages = {"commit": time.perf_counter() - started}
    result.stored, result.changed, result.stale = outcome.stored, outcome.changed, outcome.stale
    # Handed to the alert check, which would otherwise read the stored quotes back.
    written = set(outcome.stored)
    result.quotes = [q for q in quotes if q.symbol in written]
    result.failed = dict.fromkeys(outcome.missing, "quote not stored: no such asset")
    if outcome.stored:
        result.sources = {source: len(outcome.stored)}
    changed = set(outcome.changed)
    result.events = [asset_event(outcome.payloads[s]) for s in outcome.stored if s in changed]
    return result
