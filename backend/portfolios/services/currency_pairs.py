"""The FX pairs a change of an asset's currency calls for (docs/protocol.md, "Currencies").

A transaction tracks the pair converting its asset's currency into the portfolio's base when
it is recorded; an asset whose currency changes later (the source names another, or an
operator corrects it in the admin) needs the pairs of its new currency for every portfolio
holding it, or those positions would stay unpriced until something else tracked the pair.
"""

from __future__ import annotations

from collections.abc import Collection

from django.db import transaction

from backend.portfolios.models import Position

from .transactions import pair_track


def holders_pairs_track(*, symbols: Collection[str]) -> list[tuple[str, str]]:
    """Track the pair (asset currency -> base) of every portfolio holding one of `symbols`;
    returns the (currency, base) couples asked for. A new pair is fetched at once."""
    couples = sorted(
        set(
            Position.objects.filter(asset__symbol__in=list(symbols))
            .values_list("asset__currency", "portfolio__base_currency")
            .distinct()
        )
    )
    with transaction.atomic():
        for currency, base in couples:
            pair_track(currency=currency, base=base)
    return couples
