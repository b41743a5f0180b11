"""The demo user's watchlist: every demo asset the demo ledgers do not hold, so each one
shown gets prices (the dashboard subscribes to its watchlist) and none stays "Pending first
quote". Seeded only while the watchlist is empty: what the user removes stays removed
across restarts (`make run` seeds on every start)."""

from __future__ import annotations

from backend.market.models import Asset
from backend.portfolios.demo import DEMO_ASSETS

from .models import WatchlistItem


def demo_watchlist_seed(*, user_id: int) -> int:
    """Add the demo assets the user holds nowhere to an empty watchlist; returns how many."""
    if WatchlistItem.objects.filter(user_id=user_id).exists():
        return 0
    assets = (
        Asset.objects.filter(symbol__in=[symbol for symbol, *_ in DEMO_ASSETS])
        .exclude(positions__portfolio__owner_id=user_id, positions__quantity__gt=0)
        .order_by("symbol")
    )
    created = WatchlistItem.objects.bulk_create(
        [WatchlistItem(user_id=user_id, asset=asset) for asset in assets], ignore_conflicts=True
    )
    return len(created)
