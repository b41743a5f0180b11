"""FX rates for valuation and the ledger: units of a portfolio's base currency per unit of an
asset's currency, from the pair's latest quote (backend/market/currency.py has the rules).

`fx = pair price * factor` (factor 0.01 for a minor unit such as GBp, else 1), and with no
pair needed (the asset's major currency is the base) just `factor`. A needed pair with no
quote yet has no rate: the positions it converts are left out of the totals.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from decimal import Decimal
from typing import NamedTuple

from backend.market.currency import currency_major, pair_symbol
from backend.market.models import Quote
from backend.portfolios.models import ValuedPrice


class Rate(NamedTuple):
    fx: Decimal  # now
    fx_previous: Decimal  # at the pair's previous close (none: its price)
    factor: Decimal  # what one unit of the asset's currency is in its major currency
    pair: str | None  # the pair's symbol; None: no pair needed


def rates_latest(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Rate | None]:
    """The rate of each (asset currency, base currency): one query for every pair needed."""
    wanted = {key: (currency_major(key[0]).factor, pair_symbol(*key)) for key in set(keys)}
    pairs = {pair for _, pair in wanted.values() if pair is not None}
    quotes: dict[str, tuple[Decimal, Decimal | None]] = {}
    if pairs:
        rows = Quote.objects.filter(asset__symbol__in=sorted(pairs)).values_list(
            "asset__symbol", "price", "previous_close"
        )
        quotes = {symbol: (price, previous) for symbol, price, previous in rows}
    rates: dict[tuple[str, str], Rate | None] = {}
    for key, (factor, pair) in wanted.items():
        if pair is None:
            rates[key] = Rate(factor, factor, factor, None)
        elif pair in quotes:
            price, previous = quotes[pair]
            rates[key] = Rate(price * factor, (previous if previous is not None else price) * factor, factor, pair)
        else:
            rates[key] = None
    return rates


def pair_prices_valued(*, epochs: Collection[int], pairs: Collection[str]) -> dict[tuple[int, str], Decimal]:
    """The pairs' prices recorded in these valuation epochs (the rates of a previous valuation)."""
    if not epochs or not pairs:
        return {}
    rows = ValuedPrice.objects.filter(epoch_id__in=list(epochs), asset__symbol__in=sorted(pairs)).values_list(
        "epoch_id", "asset__symbol", "price"
    )
    return {(epoch, symbol): price for epoch, symbol, price in rows}


def fx_latest(*, currency: str, base: str) -> Decimal | None:
    """Today's rate from `currency` into `base` (None: the pair has no quote yet): what a
    transaction records when it names no fx_rate."""
    rate = rates_latest([(currency, base)])[(currency, base)]
    return None if rate is None else rate.fx


def pairs_needed(keys: Iterable[tuple[str, str]]) -> set[str]:
    return {pair for key in keys if (pair := pair_symbol(*key)) is not None}
