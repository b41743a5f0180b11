"""Finnhub's stream wire format: the frames we send, and strict parsing of what it sends."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from backend.market.services.stream import stream_source
from backend.market.services.stream.finnhub import CRYPTO_SYMBOLS, FinnhubStream, parse_finnhub_frame


def test_url_carries_the_token_and_frames_follow_one_symbol_each():
    source = FinnhubStream(url="wss://ws.finnhub.io", api_key="k3y")
    assert source.url() == "wss://ws.finnhub.io?token=k3y"
    assert FinnhubStream(url="ws://127.0.0.1:9/feed?x=1", api_key="k").url() == "ws://127.0.0.1:9/feed?x=1&token=k"
    assert json.loads(source.subscribe_frame("AAPL")) == {"type": "subscribe", "symbol": "AAPL"}
    assert json.loads(source.unsubscribe_frame("AAPL")) == {"type": "unsubscribe", "symbol": "AAPL"}
    assert source.quote_source == "finnhub_ws"
    assert source.ping_reply() is None  # Finnhub's ping is a keep-alive: no answer
    assert [source.supports(s) for s in ("BRK.B", "^GSPC", "EURUSD=X")] == [True, False, False]


def test_stream_source_names_finnhub_and_refuses_others():
    assert isinstance(stream_source("finnhub"), FinnhubStream)
    with pytest.raises(ValueError, match="unknown MARKET_STREAM_SOURCE"):
        stream_source("polygon")


def test_trades_parse_with_millisecond_times_and_optional_volume():
    frame = json.dumps(
        {
            "type": "trade",
            "data": [
                {"s": "AAPL", "p": 189.95, "t": 1_700_000_000_123, "v": 100, "c": ["1", "12"]},
                {"s": "msft", "p": "410.5", "t": 1_700_000_000_999},
            ],
        }
    )
    parsed = parse_finnhub_frame(frame)
    assert parsed.rejected == 0
    first, second = parsed.trades
    assert (first.symbol, first.price, first.volume) == ("AAPL", Decimal("189.95"), 100)
    assert first.traded_at == datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC)
    assert (second.symbol, second.price, second.volume) == ("MSFT", Decimal("410.5"), None)
    assert second.traded_at.microsecond == 999_000


def test_ping_error_and_other_types():
    assert parse_finnhub_frame('{"type":"ping"}').ping
    assert parse_finnhub_frame('{"type":"error","msg":"Invalid token"}').error == "Invalid token"
    news = parse_finnhub_frame('{"type":"news","data":[]}')
    assert (news.ignored, news.trades, news.rejected) == (True, (), 0)


@pytest.mark.parametrize(
    ("frame", "rejected"),
    [
        ("not json at all", 1),
        (b"\x00\xff", 1),
        ('["a list"]', 1),
        ('{"data": []}', 1),
        ('{"type":"trade","data":"AAPL"}', 1),
        ('{"type":"trade","data":[{"s":"AAPL","t":1700000000000}]}', 1),  # no price
        ('{"type":"trade","data":[{"s":"AAPL","p":NaN,"t":1700000000000}]}', 1),
        ('{"type":"trade","data":[{"s":"AAPL","p":0,"t":1700000000000}]}', 1),
        ('{"type":"trade","data":[{"s":"AAPL","p":-3.5,"t":1700000000000}]}', 1),
        ('{"type":"trade","data":[{"s":"AAPL","p":"abc","t":1700000000000}]}', 1),
        ('{"type":"trade","data":[{"s":"AAPL","p":1.5}]}', 1),  # no time
        ('{"type":"trade","data":[{"s":"AAPL","p":1.5,"t":true}]}', 1),
        ('{"type":"trade","data":[{"s":"bad symbol!","p":1.5,"t":1700000000000}]}', 1),
        ('{"type":"trade","data":[{"s":"AAPL","p":1.5,"t":1700000000000},{"s":"X","p":null,"t":1}]}', 1),
    ],
)
def test_bad_frames_and_bad_trades_are_logged_and_skipped(frame, rejected, caplog):
    with caplog.at_level(logging.WARNING, logger="backend.market.services.stream.finnhub"):
        parsed = parse_finnhub_frame(frame)
    assert parsed.rejected == rejected
    assert all(t.symbol == "AAPL" and t.price == Decimal("1.5") for t in parsed.trades)  # good neighbours kept
    assert "finnhub stream" in caplog.text


def test_crypto_pairs_are_followed_by_finnhubs_exchange_symbol_and_trade_back_as_ours():
    source = FinnhubStream(url="wss://ws.finnhub.io", api_key="k")
    assert json.loads(source.subscribe_frame("BTC-USD")) == {"type": "subscribe", "symbol": "BINANCE:BTCUSDT"}
    assert json.loads(source.unsubscribe_frame("ETH-USD")) == {"type": "unsubscribe", "symbol": "BINANCE:ETHUSDT"}
    frame = json.dumps({"type": "trade", "data": [{"s": "BINANCE:BTCUSDT", "p": 97012.5, "t": 1_700_000_000_000}]})
    (trade,) = source.parse(frame).trades
    assert (trade.symbol, trade.price) == ("BTC-USD", Decimal("97012.5"))
    # Every row of the table maps back to the symbol it came from.
    assert all(
        source.parse(json.dumps({"type": "trade", "data": [{"s": theirs, "p": 1, "t": 1}]})).trades[0].symbol == ours
        for ours, theirs in CRYPTO_SYMBOLS.items()
    )


def test_a_crypto_pair_finnhub_has_no_name_for_stays_polled_and_its_unknown_trades_are_rejected():
    source = FinnhubStream(url="wss://ws.finnhub.io", api_key="k")
    assert [source.supports(s) for s in ("BTC-USD", "PEPE-USD", "BRK-B")] == [True, False, True]
    unmapped = source.parse(json.dumps({"type": "trade", "data": [{"s": "BINANCE:PEPEUSDT", "p": 1, "t": 1}]}))
    assert (unmapped.trades, unmapped.rejected) == ((), 1)
