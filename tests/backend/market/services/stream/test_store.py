"""A flush stored like a fetched batch, and its ordering against polled quotes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache

from backend.market.models import Asset, PriceHistory, Quote
from backend.market.selectors import quote_cache_key
from backend.market.services.ingest import quotes_store
from backend.market.services.sources.base import QuoteData
from backend.market.services.stream.base import Trade
from backend.market.services.stream.store import stream_trades_store

pytestmark = pytest.mark.django_db

AT = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
WS = "finnhub_ws"


def polled(symbol: str, price: str, at: datetime, **extra: object) -> QuoteData:
    return QuoteData(symbol=symbol, price=Decimal(price), source="yahoo", quoted_at=at, **extra)  # type: ignore[arg-type]


def trade(symbol: str, price: str, at: datetime, volume: int | None = 10) -> Trade:
    return Trade(symbol=symbol, price=Decimal(price), traded_at=at, volume=volume)


@pytest.fixture
def aaa() -> Asset:
    asset = Asset.objects.create(symbol="AAA", tracking_status="tracked")
    day = {"previous_close": Decimal("100"), "high": Decimal("104"), "low": Decimal("99"), "volume": 5_000}
    quotes_store(quotes=[polled("AAA", "102", AT, market_cap=9_000_000, **day)])
    return asset


def test_a_flush_stores_the_last_trade_with_the_change_from_the_stored_previous_close(aaa):
    later = AT + timedelta(seconds=1)
    result = stream_trades_store(
        trades=[trade("AAA", "103", later), trade("AAA", "101.234567", later + timedelta(milliseconds=5))], source=WS
    )
    quote = Quote.objects.get(asset=aaa)
    assert (quote.price, quote.source, quote.quoted_at) == (
        Decimal("101.234567"),
        WS,
        later + timedelta(milliseconds=5),
    )
    assert quote.previous_close == Decimal("100")
    assert quote.change == Decimal("1.234567")
    assert quote.change_percent == Decimal("1.234567")  # (101.234567 - 100) / 100 * 100, in Decimal
    assert (quote.high, quote.low, quote.volume, quote.market_cap) == (Decimal("104"), Decimal("99"), 5_000, 9_000_000)
    assert (result.stored, result.changed, result.sources) == (["AAA"], ["AAA"], {WS: 1})
    [event] = result.events
    assert (event["type"], event["group"], event["data"]["price"]) == ("asset_update", "asset.AAA", 101.234567)
    assert event["data"]["last_updated"] == "2026-12-01T15:00:01.005000Z"
    assert cache.get(quote_cache_key("AAA"))["price"] == Decimal("101.234567")
    assert PriceHistory.objects.filter(asset=aaa, source=WS).count() == 1
    assert "commit" in result.stages


def test_an_unchanged_price_is_stored_without_an_event_and_an_unknown_symbol_fails(aaa):
    result = stream_trades_store(
        trades=[trade("AAA", "102", AT + timedelta(seconds=1)), trade("ZZZ", "1", AT)], source=WS
    )
    assert (result.stored, result.changed, result.events) == (["AAA"], [], [])
    assert result.failed == {"ZZZ": "quote not stored: no such asset"}


def test_a_first_trade_without_a_stored_quote_has_no_change():
    Asset.objects.create(symbol="NEW")
    stream_trades_store(trades=[trade("NEW", "5", AT)], source=WS)
    quote = Quote.objects.get(asset__symbol="NEW")
    assert (quote.price, quote.previous_close, quote.change, quote.change_percent) == (Decimal("5"), None, None, None)


def test_a_streamed_trade_older_than_the_stored_quote_is_dropped(aaa):
    result = stream_trades_store(trades=[trade("AAA", "50", AT - timedelta(seconds=1))], source=WS)
    assert (result.stale, result.stored, result.events) == (["AAA"], [], [])
    quote = Quote.objects.get(asset=aaa)
    assert (quote.price, quote.source) == (Decimal("102"), "yahoo")


def test_a_polled_quote_never_overwrites_a_newer_streamed_price_but_refreshes_what_trades_lack(aaa):
    streamed_at = AT + timedelta(seconds=30)
    stream_trades_store(trades=[trade("AAA", "105", streamed_at)], source=WS)
    # The next poll: older than the trade (the provider's quote time lags), with a new day's
    # previous close, high, low and volume.
    result = quotes_store(
        quotes=[
            polled(
                "AAA", "104", AT + timedelta(seconds=20), previous_close=Decimal("101"), high=Decimal("106"),
                low=Decimal("98"), volume=7_000,
            )
        ]
    )  # fmt: skip
    assert (result.stale, result.stored, result.changed) == (["AAA"], [], [])
    quote = Quote.objects.get(asset=aaa)
    assert (quote.price, quote.source, quote.quoted_at) == (Decimal("105"), WS, streamed_at)
    assert (quote.previous_close, quote.change) == (Decimal("101"), Decimal("4"))
    assert quote.change_percent == Decimal("3.960396")
    assert (quote.high, quote.low, quote.volume) == (Decimal("106"), Decimal("98"), 7_000)
    assert cache.get(quote_cache_key("AAA"))["previous_close"] == Decimal("101")
    # A poll newer than the trade replaces it as before.
    newer = quotes_store(quotes=[polled("AAA", "107", streamed_at + timedelta(seconds=1), previous_close=Decimal(101))])
    assert newer.changed == ["AAA"]
    assert Quote.objects.get(asset=aaa).source == "yahoo"
    # The next trade carries the refreshed previous close.
    stream_trades_store(trades=[trade("AAA", "111.1", streamed_at + timedelta(seconds=2))], source=WS)
    assert Quote.objects.get(asset=aaa).change == Decimal("10.1")
