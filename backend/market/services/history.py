"""Loading daily history bars (update_asset_prices --historical).

From the first configured source that has history: Yahoo's v8 chart endpoint or the
simulated path. Alpha Vantage's and Finnhub's free tiers have no daily bars worth the budget.
Bars are inserted idempotently (unique asset + quoted_at), bad closes are skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import requests

from backend.market.models import Asset, PriceHistory

from .manager import ManagedSource, data_source_manager
from .sources.base import InvalidQuote, http_timeout, parse_optional_int, parse_price
from .sources.simulated import SimulatedSource, simulated_price
from .sources.yahoo import YahooSource

logger = logging.getLogger(__name__)

Bar = tuple[datetime, Decimal, int | None]


def parse_yahoo_chart(body: Any) -> list[Bar]:
    """`chart.result[0]`: parallel arrays of timestamps, closes and volumes."""
    try:
        result = body["chart"]["result"][0]
        stamps = result["timestamp"]
        quote = result["indicators"]["quote"][0]
        closes, volumes = quote["close"], quote.get("volume") or [None] * len(stamps)
    except (KeyError, IndexError, TypeError):
        return []
    bars: list[Bar] = []
    for stamp, close, volume in zip(stamps, closes, volumes, strict=False):
        try:
            bars.append((datetime.fromtimestamp(int(stamp), tz=UTC), parse_price(close), parse_optional_int(volume)))
        except (InvalidQuote, TypeError, ValueError):
            continue
    return bars


def _yahoo_bars(managed: ManagedSource, symbol: str, days: int) -> list[Bar]:
    source = managed.source
    assert isinstance(source, YahooSource)
    if not managed.limit.acquire():
        return []
    try:
        response = source.session.get(
            f"{source.base_url}/v8/finance/chart/{symbol}",
            params={"range": f"{days}d", "interval": "1d"},
            timeout=http_timeout(),
        )
        return parse_yahoo_chart(response.json()) if response.status_code == 200 else []
    except (requests.RequestException, ValueError):
        return []


def _simulated_bars(symbol: str, days: int, now: datetime) -> list[Bar]:
    close = now.replace(hour=21, minute=0, second=0, microsecond=0)
    if close > now:
        close -= timedelta(days=1)
    bars: list[Bar] = []
    for back in range(days):
        at = close - timedelta(days=back)
        bars.append((at, Decimal(repr(simulated_price(symbol, at.timestamp()))).quantize(Decimal("0.0001")), None))
    return bars


def history_load(*, symbols: Sequence[str], days: int, now: datetime) -> int:
    """Insert up to `days` daily bars per symbol; returns how many rows were new."""
    assets = dict(Asset.objects.filter(symbol__in=symbols).values_list("symbol", "id"))
    managed = next(
        (m for m in data_source_manager().managed if isinstance(m.source, YahooSource | SimulatedSource)), None
    )
    if managed is None:
        logger.warning("no configured source has history bars (yahoo or simulated)")
        return 0
    inserted = 0
    for symbol, asset_id in assets.items():
        if isinstance(managed.source, SimulatedSource):
            bars = _simulated_bars(symbol, days, now)
        else:
            bars = _yahoo_bars(managed, symbol, days)
        rows = [
            PriceHistory(asset_id=asset_id, quoted_at=at, price=price, volume=volume, source=managed.source.name)
            for at, price, volume in bars
        ]
        before = PriceHistory.objects.filter(asset_id=asset_id).count()
        PriceHistory.objects.bulk_create(rows, ignore_conflicts=True)
        inserted += PriceHistory.objects.filter(asset_id=asset_id).count() - before
    return inserted
