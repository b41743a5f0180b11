"""Streaming market data: a provider's WebSocket of trades (beside the polling sources).

`base.py` is the interface (StreamingSource, Trade), `finnhub.py` the first provider's wire
format, `conflate.py` the last-trade-wins window between flushes, `store.py` a flush stored
like a fetched batch, `state.py` the stream process's state in Redis for health, status and
metrics. The process itself (the socket, the flush timer) is tasks/stream.py.
"""

from __future__ import annotations

from .base import StreamingSource

STREAM_SOURCE_NAMES = ("finnhub",)


def stream_source(name: str) -> StreamingSource:
    """The streaming source MARKET_STREAM_SOURCE names; ValueError for an unknown one."""
    if name == "finnhub":
        from .finnhub import FinnhubStream

        return FinnhubStream()
    raise ValueError(f"unknown MARKET_STREAM_SOURCE {name!r}: choose one of {', '.join(STREAM_SOURCE_NAMES)}")
