"""Changes a dashboard user makes: their watchlist."""

from __future__ import annotations

from django.db import transaction

from backend.market.models import Asset
from backend.market.services.tracking import asset_track
from backend.market.symbols import symbol_normalize

from .models import WatchlistItem


class UnknownSymbol(ValueError):
    """Every market-data source has said this symbol does not exist."""


@transaction.atomic
def watchlist_add(*, user_id: int, symbol: str) -> WatchlistItem:
    """Add a symbol to the user's watchlist (idempotent). A new symbol starts being tracked
    and fetched at once. Raises InvalidSymbol for a malformed symbol and UnknownSymbol for
    one the sources already rejected, so the user learns it now rather than never seeing a
    price."""
    symbol = symbol_normalize(symbol)
    known = Asset.objects.filter(symbol=symbol).first()
    if known is not None and known.tracking_status == Asset.TrackingStatus.UNKNOWN:
        raise UnknownSymbol(f"{symbol} is not known to any market data source")
    asset = asset_track(symbol=symbol)
    item, _ = WatchlistItem.objects.get_or_create(user_id=user_id, asset=asset)
    return item


def watchlist_remove(*, user_id: int, symbol: str) -> bool:
    """Remove a symbol from the user's watchlist; False when it was not on it."""
    symbol = symbol_normalize(symbol)
    deleted, _ = WatchlistItem.objects.filter(user_id=user_id, asset__symbol=symbol).delete()
    return deleted > 0
