"""An offline source for the demo: a deterministic geometric Brownian motion per symbol.

The same symbol at the same second always has the same price, in every process, with no
state anywhere: the Brownian path is built by Brownian-bridge refinement over 2^32 seconds,
each node's normal draw seeded by a hash of (symbol, node). One quote costs 32 hashes.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from statistics import NormalDist

from backend.market.currency import pair_parse

from .base import Answer, Permit, QuoteData

ORIGIN = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
LEVELS = 32
SECONDS_PER_YEAR = 365 * 86400
_NORMAL = NormalDist()
FOUR_PLACES = Decimal("0.0001")


def _uniform(*parts: object) -> float:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    # (0, 1) exclusive, so inv_cdf never sees 0 or 1.
    return (int.from_bytes(digest, "big") + 0.5) / 2**64


def _normal(*parts: object) -> float:
    return _NORMAL.inv_cdf(_uniform(*parts))


def brownian(symbol: str, step: int) -> float:
    """W(step) of the symbol's standard Brownian path (unit variance per step)."""
    lo, hi = 0, 2**LEVELS
    w_lo, w_hi = 0.0, math.sqrt(hi) * _normal(symbol, "top")
    step = min(max(step, 0), hi)
    while hi - lo > 1:
        if step == lo:
            return w_lo
        mid = (lo + hi) // 2
        w_mid = (w_lo + w_hi) / 2 + math.sqrt((hi - lo) / 4) * _normal(symbol, lo, hi)
        if step < mid:
            hi, w_hi = mid, w_mid
        else:
            lo, w_lo = mid, w_mid
    return w_lo if step == lo else w_hi


def simulated_price(symbol: str, at: float) -> float:
    """The symbol's price at unix time `at` (whole seconds)."""
    start = 20 + 480 * _uniform(symbol, "start")  # 20 to 500
    sigma = 0.2 + 0.4 * _uniform(symbol, "sigma")  # annual volatility 20-60 %
    drift = 0.05
    seconds = int(at - ORIGIN)
    years = seconds / SECONDS_PER_YEAR
    per_second_sigma = sigma / math.sqrt(SECONDS_PER_YEAR)
    return start * math.exp((drift - sigma**2 / 2) * years + per_second_sigma * brownian(symbol, seconds))


# FX pairs (`EURUSD=X`) start near a real rate (US dollars per unit) and move at 8 % a year.
USD_PER_UNIT = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "JPY": 0.0067, "CAD": 0.73, "HKD": 0.128, "CHF": 1.13}
USD_PER_UNIT |= {"ZAR": 0.055, "ILS": 0.27, "AUD": 0.66, "CNY": 0.14, "SEK": 0.095, "INR": 0.012}
SIX_PLACES = Decimal("0.000001")


def simulated_rate(symbol: str, at: float) -> float | None:
    """A pair's rate at unix time `at` (None: not a pair)."""
    pair = pair_parse(symbol)
    if pair is None:
        return None
    start = USD_PER_UNIT.get(pair[0], 1.0) / USD_PER_UNIT.get(pair[1], 1.0)
    per_second_sigma = 0.08 / math.sqrt(SECONDS_PER_YEAR)
    return start * math.exp(per_second_sigma * brownian(symbol, int(at - ORIGIN)))


def _money(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(FOUR_PLACES)


def _quoted(symbol: str, at: float) -> Decimal:
    rate = simulated_rate(symbol, at)
    if rate is not None:
        return Decimal(repr(rate)).quantize(SIX_PLACES)
    return _money(simulated_price(symbol, at))


class SimulatedSource:
    name = "simulated"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def quote(self, symbol: str) -> QuoteData:
        now = int(self.clock())
        day_start = now - now % 86400
        price = _quoted(symbol, now)
        previous_close = _quoted(symbol, day_start)
        change = price - previous_close
        shares = int(1e8 + 9.9e9 * _uniform(symbol, "shares"))
        day_volume = 1e6 + 9e7 * _uniform(symbol, "volume", day_start)
        return QuoteData(
            symbol=symbol,
            price=price,
            source=self.name,
            quoted_at=datetime.fromtimestamp(now, tz=UTC),
            previous_close=previous_close,
            change=change,
            change_percent=(change / previous_close * 100).quantize(FOUR_PLACES),
            volume=int(day_volume * (now - day_start) / 86400),
            high=max(price, previous_close),
            low=min(price, previous_close),
            market_cap=int(price * shares),
        )

    def fetch(self, symbols: list[str], *, permit: Permit) -> dict[str, Answer]:
        # Offline: no request, so nothing to rate-limit.
        return {symbol: self.quote(symbol) for symbol in symbols}
