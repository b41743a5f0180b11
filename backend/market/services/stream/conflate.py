"""Conflation: between two flushes only the last trade of each symbol matters.

Per symbol the latest trade wins (by trade time; the later arrival on a tie). A trade older
than what this symbol last flushed is dropped here, before it costs a database round trip;
the store drops one older than the stored quote (a polled quote may be newer).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from .base import Trade


class Conflator:
    def __init__(self) -> None:
        self._pending: dict[str, Trade] = {}
        self._flushed: dict[str, datetime] = {}
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, trade: Trade) -> bool:
        """Keep `trade` if it is the symbol's latest; False when it was dropped as older."""
        flushed = self._flushed.get(trade.symbol)
        pending = self._pending.get(trade.symbol)
        if (flushed is not None and trade.traded_at < flushed) or (
            pending is not None and trade.traded_at < pending.traded_at
        ):
            self.dropped += 1
            return False
        self._pending[trade.symbol] = trade
        return True

    def drain(self) -> list[Trade]:
        """The pending trades, one per symbol, and start a new window."""
        trades = list(self._pending.values())
        self._pending = {}
        for trade in trades:
            self._flushed[trade.symbol] = trade.traded_at
        return trades

    def restore(self, trades: Iterable[Trade]) -> None:
        """Put back a drained batch that could not be stored (the database blinked): each
        trade returns unless a newer one of its symbol arrived meanwhile."""
        for trade in trades:
            pending = self._pending.get(trade.symbol)
            if pending is None or pending.traded_at < trade.traded_at:
                self._pending[trade.symbol] = trade

    def forget(self, symbols: Iterable[str]) -> None:
        """Symbols no longer followed: their pending trade and flush mark go."""
        for symbol in symbols:
            self._pending.pop(symbol, None)
            self._flushed.pop(symbol, None)
