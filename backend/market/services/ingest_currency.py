"""The trading currency a source names beside its quotes (Yahoo's `currency`), stored on the
asset by `ingest.quotes_store`: one UPDATE per batch, never a query per quote, and never over
an operator's correction (`Asset.currency_locked`, set by the admin; docs/protocol.md,
"Currencies"). A changed currency changes the asset's value in every base currency, so
quotes_store reports those symbols as `changed` and the usual revaluation follows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from backend.market.currency import currencies_equivalent
from backend.market.models import Asset

from .sources.base import QuoteData


def currencies_named(quotes: Sequence[QuoteData], unlocked: Mapping[str, str]) -> dict[str, str]:
    """symbol -> the currency its source names, where that differs from the stored currency
    of an asset no operator locked (`unlocked`: symbol -> stored currency). Two spellings of
    one unit (GBp, GBX) are no change."""
    named: dict[str, str] = {}
    for data in quotes:
        code = getattr(data, "currency", None)  # only some sources name it (YahooQuote)
        stored = unlocked.get(data.symbol)
        if isinstance(code, str) and code and stored is not None and not currencies_equivalent(code, stored):
            named[data.symbol] = code
    return named


def currencies_write(*, named: Mapping[str, str], asset_ids: Mapping[str, int]) -> list[str]:
    """Store the named currencies in one statement (a CASE per asset); an asset an operator
    locked in the meantime keeps its own. Returns the symbols asked to change."""
    if not named:
        return []
    rows = [Asset(pk=asset_ids[symbol], currency=code) for symbol, code in named.items()]
    Asset.objects.filter(currency_locked=False).bulk_update(rows, ["currency"])
    return sorted(named)
