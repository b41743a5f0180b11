"""Reads of market data shaped for clients."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError

from backend.core.clock import iso_z
from backend.market.currency import pair_symbol
from backend.market.models import Asset, Quote
from backend.realtime.payloads import AssetUpdate
from backend.realtime.registry import subscribed_symbols


def asset_update_payload(quote: Quote) -> AssetUpdate:
    """The `asset_update` fields of one latest quote (the asset must be loaded or loadable)."""
    return asset_update_fields(symbol=quote.asset.symbol, quote=quote)


class QuoteFields(Protocol):
    """A quote's fields, read-only: a Quote or a stored row."""

    @property
    def price(self) -> Any: ...
    @property
    def change(self) -> Any: ...
    @property
    def change_percent(self) -> Any: ...
    @property
    def volume(self) -> Any: ...
    @property
    def high(self) -> Any: ...
    @property
    def low(self) -> Any: ...
    @property
    def market_cap(self) -> Any: ...
    @property
    def previous_close(self) -> Any: ...
    @property
    def quoted_at(self) -> datetime: ...
    @property
    def source(self) -> str: ...


def asset_update_fields(*, symbol: str, quote: QuoteFields) -> AssetUpdate:
    """The `asset_update` of a symbol from anything with a quote's fields (a Quote, a stored row)."""
    return {
        "symbol": symbol,
        "price": quote.price,
        "change": quote.change,
        "change_percent": quote.change_percent,
        "volume": quote.volume,
        "high": quote.high,
        "low": quote.low,
        "market_cap": quote.market_cap,
        "previous_close": quote.previous_close,
        "last_updated": iso_z(quote.quoted_at),
        "source": quote.source,
    }


def quote_cache_key(symbol: str) -> str:
    return f"quote:{symbol}"


def quote_cached(*, symbol: str) -> AssetUpdate | None:
    """The latest quote for reads (`/api/prices/<symbol>/`, subscribe snapshots): the Redis
    cache first, then the database (which refills the cache). A cache that does not answer
    is skipped, not an error. Scheduled cycles never read this: they always ask upstream."""
    return quotes_cached(symbols=[symbol]).get(symbol)


def quotes_cached(*, symbols: list[str]) -> dict[str, AssetUpdate]:
    """`quote_cached` for many symbols at once: one cache read, and one query for the misses
    (a burst of subscribes is answered in one database hop). Symbols without a quote yet are
    absent from the answer."""
    if not symbols:
        return {}
    keys = {quote_cache_key(s): s for s in symbols}
    try:
        found: dict[str, AssetUpdate] = cache.get_many(list(keys))
    except RedisError:
        found = {}
    payloads = {keys[k]: v for k, v in found.items() if v is not None}
    missing = [s for s in symbols if s not in payloads]
    if missing:
        quotes = Quote.objects.select_related("asset").filter(asset__symbol__in=missing)
        loaded = {q.asset.symbol: asset_update_payload(q) for q in quotes}
        if loaded:
            with contextlib.suppress(RedisError):
                cache.set_many(
                    {quote_cache_key(s): p for s, p in loaded.items()}, timeout=settings.REALTIME_CACHE_TIMEOUT
                )
        payloads.update(loaded)
    return payloads


def pairs_needed() -> set[str]:
    """The FX pairs held positions convert through: `XXXYYY=X` for each asset currency held
    in a portfolio of another base currency (backend/market/currency.py)."""
    held = (
        Asset.objects.filter(positions__quantity__gt=0)
        .values_list("currency", "positions__portfolio__base_currency")
        .distinct()
    )
    return {pair for currency, base in held if (pair := pair_symbol(currency, base)) is not None}


def tracked_symbols(*, include_unknown: bool = False) -> list[str]:
    """What a cycle fetches: active assets held in a position, on a watchlist or under an
    active alert, the FX pairs held ones convert through (those with an asset: the ledger
    creates them), plus those live clients subscribe to. Symbols every source called
    unknown are left out, except once per PRICE_UNKNOWN_REPROBE_SECONDS (a re-probe) or when
    `include_unknown`."""
    subscribed = subscribed_symbols()
    # Subqueries, not joins: joined, every position times every alert of an asset is a row.
    held = Asset.objects.filter(positions__quantity__gt=0).values("pk")
    alerted = Asset.objects.filter(alerts__active=True).values("pk")
    # The dashboard's watchlist, by its reverse relation (backend.dashboard sits above market).
    listed = Asset.objects.filter(watchlist_items__isnull=False).values("pk")
    wanted = (
        Q(pk__in=held)
        | Q(pk__in=alerted)
        | Q(pk__in=listed)
        | Q(symbol__in=subscribed)
        | Q(symbol__in=sorted(pairs_needed()))
    )
    assets = Asset.objects.filter(is_active=True).filter(wanted)
    if not include_unknown:
        recent = timezone.now() - timedelta(seconds=settings.PRICE_UNKNOWN_REPROBE_SECONDS)
        assets = assets.exclude(tracking_status=Asset.TrackingStatus.UNKNOWN, unknown_since__gt=recent)
    return sorted(set(assets.values_list("symbol", flat=True)))


def unknown_symbols() -> list[str]:
    return list(Asset.objects.filter(tracking_status=Asset.TrackingStatus.UNKNOWN).values_list("symbol", flat=True))
