"""Starting to track a symbol a user asked for (WebSocket subscribe, a new position)."""

from __future__ import annotations

import uuid

from backend.market.models import Asset
from backend.market.signals import price_batches_dispatched
from backend.market.symbols import symbol_normalize


def asset_track(*, symbol: str) -> Asset:
    """Return the asset for a well-formed symbol, creating it if new. A new (or still
    pending) asset gets a forced fetch enqueued after commit, so its first quote arrives
    promptly instead of at the next cycle. Raises InvalidSymbol for a malformed symbol."""
    symbol = symbol_normalize(symbol)
    asset, created = Asset.objects.get_or_create(symbol=symbol)
    if created or asset.tracking_status == Asset.TrackingStatus.PENDING:
        price_batches_dispatched.send(sender=Asset, run_id=None, batches=[(str(uuid.uuid4()), [symbol])], force=True)
    return asset
