"""Starting to track a symbol a user asked for (WebSocket subscribe, a new position), and
making sure assets exist for symbols a caller is about to fetch itself."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

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


def assets_ensure(*, symbols: Sequence[str]) -> list[Asset]:
    """The assets of well-formed symbols, in the order asked (duplicates once), creating
    the ones not yet known (pending their first quote). Enqueues nothing: for callers that
    fetch the symbols themselves (a forced refresh, `update_asset_prices`). Raises
    InvalidSymbol for a malformed symbol before creating any."""
    wanted = list(dict.fromkeys(symbol_normalize(s) for s in symbols))
    if not wanted:
        return []
    known = set(Asset.objects.filter(symbol__in=wanted).values_list("symbol", flat=True))
    new = [Asset(symbol=s) for s in wanted if s not in known]
    if new:
        # A concurrent caller may create the same symbols: theirs stand, ours are skipped.
        Asset.objects.bulk_create(new, ignore_conflicts=True)
    assets = Asset.objects.in_bulk(wanted, field_name="symbol")
    return [assets[s] for s in wanted]
