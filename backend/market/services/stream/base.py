"""The one interface every streaming market-data source answers through (beside the polling
sources of ../sources/base.py): where to connect, the frames that follow a symbol, and strict
parsing of what the provider sends.

A frame becomes a `Parsed`: the trades it carried, whether it was a keep-alive ping, an
error message from the provider, and how many of its parts were bad. Prices that are missing,
zero, negative, NaN or not numbers, and frames that are not the provider's format, never
become a `Trade`: they are logged and counted, and the stream goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class Trade:
    """One trade as the provider reported it: the symbol in our spelling, the traded price,
    when it traded (the exchange's time), and the size when the provider gives one."""

    symbol: str
    price: Decimal
    traded_at: datetime
    volume: int | None = None


@dataclass(frozen=True)
class Parsed:
    trades: tuple[Trade, ...] = ()
    ping: bool = False
    error: str | None = None
    # Frames or trade entries that were logged and skipped (not JSON, no price, a bad price).
    rejected: int = 0
    # Frames of a type this source does not use (news, status): ignored without a log line.
    ignored: bool = False


class StreamingSource(Protocol):
    # The provider (MARKET_STREAM_SOURCE), and the `source` stored with each quote it priced.
    name: str
    quote_source: str

    def url(self) -> str:
        """The WebSocket URL to connect to, credentials included."""
        ...

    def supports(self, symbol: str) -> bool:
        """Whether the provider streams this symbol at all (an index may only be polled)."""
        ...

    def subscribe_frame(self, symbol: str) -> str: ...

    def unsubscribe_frame(self, symbol: str) -> str: ...

    def ping_reply(self) -> str | None:
        """What to answer to the provider's ping frame, or None when it needs no answer."""
        ...

    def parse(self, frame: str | bytes) -> Parsed: ...
