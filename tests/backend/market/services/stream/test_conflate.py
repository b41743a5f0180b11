"""Conflation: per symbol the last trade wins; older trades never come back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from backend.market.services.stream.base import Trade
from backend.market.services.stream.conflate import Conflator

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def trade(symbol: str, price: str, ms: int) -> Trade:
    return Trade(symbol=symbol, price=Decimal(price), traded_at=T0 + timedelta(milliseconds=ms))


def test_the_last_trade_of_each_symbol_wins_within_a_window():
    window = Conflator()
    for t in (trade("AAA", "1", 0), trade("BBB", "5", 1), trade("AAA", "2", 2), trade("AAA", "3", 3)):
        assert window.add(t)
    assert len(window) == 2
    assert {t.symbol: t.price for t in window.drain()} == {"AAA": Decimal("3"), "BBB": Decimal("5")}
    assert (len(window), window.drain()) == (0, [])


def test_a_trade_older_than_the_pending_or_the_flushed_one_is_dropped():
    window = Conflator()
    window.add(trade("AAA", "2", 10))
    assert not window.add(trade("AAA", "1", 5))  # arrived late
    assert window.add(trade("AAA", "3", 10))  # same time: the later arrival wins
    assert [t.price for t in window.drain()] == [Decimal("3")]
    assert not window.add(trade("AAA", "0.5", 9))  # older than what was flushed
    assert window.dropped == 2
    assert len(window) == 0


def test_a_failed_flush_is_restored_unless_a_newer_trade_came_meanwhile():
    window = Conflator()
    window.add(trade("AAA", "1", 1))
    window.add(trade("BBB", "1", 1))
    failed = window.drain()
    window.add(trade("AAA", "2", 2))
    window.restore(failed)
    assert {t.symbol: t.price for t in window.drain()} == {"AAA": Decimal("2"), "BBB": Decimal("1")}


def test_forgotten_symbols_lose_their_pending_trade():
    window = Conflator()
    window.add(trade("AAA", "1", 1))
    window.add(trade("BBB", "1", 1))
    window.forget(["AAA"])
    assert [t.symbol for t in window.drain()] == ["BBB"]
