"""An offline source for the demo: a deterministic geometric Brownian motion per symbol.

The same symbol at the same second always has the same price, in every process, with no
state anywhere: the Brownian path is built by Brownian-bridge refinement over 2^32 seconds,
each node's normal draw seeded by a hash of (symbol, node). One quote costs 32 hashes.
Before ORIGIN an independent path runs backwards, so history bars of earlier years move too.

Well-known symbols follow REFERENCES (sources/reference_levels.py): SIMULATED reference levels,
not market data. Their path is pinned to each listed level at that day's close and to the
current level every year from REFERENCE_DAY on, with the pins joined by a log-linear
correction of the free path (a Brownian bridge between pins), so today's price sits near the
level a user expects and the demo ledgers' trades match their day's close. Quotes and history
bars both come from `simulated_value` (docs/history-and-demo.md).
"""

from __future__ import annotations

import bisect
import hashlib
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from statistics import NormalDist

from backend.market.currency import pair_parse

from .base import Answer, Permit, QuoteData
from .reference_levels import REFERENCE_DAY, REFERENCES, Reference

ORIGIN = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
LEVELS = 32
SECONDS_PER_YEAR = 365 * 86400
DRIFT = 0.05
# The simulated daily close (UTC): the time of history bars and of the reference pins.
CLOSE_HOUR = 21
_NORMAL = NormalDist()
FOUR_PLACES = Decimal("0.0001")


def _uniform(*parts: object) -> float:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    # (0, 1) exclusive, so inv_cdf never sees 0 or 1.
    return (int.from_bytes(digest, "big") + 0.5) / 2**64


def _normal(*parts: object) -> float:
    return _NORMAL.inv_cdf(_uniform(*parts))


# Nodes spanning a day or more are shared by the neighbouring closes of a history backfill:
# kept, they halve its hashes. 2^16 of them is a few MB.
SHARED_NODE = 2**16


@lru_cache(maxsize=2**16)
def _shared_normal(symbol: str, lo: int, hi: int) -> float:
    return _normal(symbol, lo, hi)


def brownian(symbol: str, step: int) -> float:
    """W(step) of the symbol's standard Brownian path (unit variance per step)."""
    lo, hi = 0, 2**LEVELS
    w_lo, w_hi = 0.0, math.sqrt(hi) * _normal(symbol, "top")
    step = min(max(step, 0), hi)
    while hi - lo > 1:
        if step == lo:
            return w_lo
        mid = (lo + hi) // 2
        draw = _shared_normal(symbol, lo, hi) if hi - lo >= SHARED_NODE else _normal(symbol, lo, hi)
        w_mid = (w_lo + w_hi) / 2 + math.sqrt((hi - lo) / 4) * draw
        if step < mid:
            hi, w_hi = mid, w_mid
        else:
            lo, w_lo = mid, w_mid
    return w_lo if step == lo else w_hi


def two_sided_brownian(symbol: str, seconds: int) -> float:
    """W at `seconds` from ORIGIN, either side: before it, an independent path run backwards
    (so every value from ORIGIN on is what it always was)."""
    return brownian(symbol, seconds) if seconds >= 0 else brownian(f"{symbol}|past", -seconds)


def _log_free(symbol: str, seconds: int, sigma: float) -> float:
    """log of the unanchored GBM (started at 1 at ORIGIN)."""
    years = seconds / SECONDS_PER_YEAR
    per_second_sigma = sigma / math.sqrt(SECONDS_PER_YEAR)
    return (DRIFT - sigma**2 / 2) * years + per_second_sigma * two_sided_brownian(symbol, seconds)


def _close_seconds(day: str) -> int:
    at = datetime.fromisoformat(day).replace(hour=CLOSE_HOUR, tzinfo=UTC)
    return int(at.timestamp() - ORIGIN)


@lru_cache(maxsize=4096)
def _pin_offset(symbol: str, seconds: int, level: float, sigma: float) -> float:
    """What the free path's log must gain at a pin to equal `level` there."""
    return math.log(level) - _log_free(symbol, seconds, sigma)


@lru_cache(maxsize=256)
def _pins(symbol: str) -> tuple[tuple[int, float], ...]:
    """The fixed pins (seconds from ORIGIN, level) in time order, REFERENCE_DAY's last."""
    reference = REFERENCES[symbol]
    dated = [(_close_seconds(day), level) for day, level in reference.earlier]
    return (*sorted(dated), (_close_seconds(REFERENCE_DAY), reference.level))


def _anchored_log(symbol: str, seconds: int, reference: Reference) -> float:
    pins = _pins(symbol)
    last_at = pins[-1][0]
    if seconds >= last_at:
        # Pinned to the reference level every year on: near it whenever the demo runs.
        k = (seconds - last_at) // SECONDS_PER_YEAR
        left = (last_at + k * SECONDS_PER_YEAR, reference.level)
        right = (left[0] + SECONDS_PER_YEAR, reference.level)
    else:
        index = bisect.bisect_right([at for at, _ in pins], seconds)
        if index == 0:
            left = right = pins[0]
        else:
            left, right = pins[index - 1], pins[index]
    offset_left = _pin_offset(symbol, left[0], left[1], reference.sigma)
    offset_right = _pin_offset(symbol, right[0], right[1], reference.sigma)
    weight = 0.0 if right[0] == left[0] else (seconds - left[0]) / (right[0] - left[0])
    return _log_free(symbol, seconds, reference.sigma) + offset_left + (offset_right - offset_left) * weight


def simulated_price(symbol: str, at: float) -> float:
    """The symbol's price at unix time `at` (whole seconds)."""
    seconds = int(at - ORIGIN)
    reference = REFERENCES.get(symbol)
    if reference is not None:
        return math.exp(_anchored_log(symbol, seconds, reference))
    start = 20 + 480 * _uniform(symbol, "start")  # 20 to 500
    sigma = 0.2 + 0.4 * _uniform(symbol, "sigma")  # annual volatility 20-60 %
    return start * math.exp(_log_free(symbol, seconds, sigma))


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
    return start * math.exp(per_second_sigma * two_sided_brownian(symbol, int(at - ORIGIN)))


def _money(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(FOUR_PLACES)


def simulated_value(symbol: str, at: float) -> Decimal:
    """What the source quotes for the symbol at unix time `at`, as stored: a pair's rate to
    6 places, any other price to 4. A history bar at `at` holds this same value."""
    rate = simulated_rate(symbol, at)
    if rate is not None:
        return Decimal(repr(rate)).quantize(SIX_PLACES)
    return _money(simulated_price(symbol, at))


def simulated_day_volume(symbol: str, day_start: int) -> float:
    """The symbol's whole-day volume for the UTC day starting at `day_start`."""
    return 1e6 + 9e7 * _uniform(symbol, "volume", day_start)


class SimulatedSource:
    name = "simulated"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def quote(self, symbol: str) -> QuoteData:
        now = int(self.clock())
        day_start = now - now % 86400
        price = simulated_value(symbol, now)
        previous_close = simulated_value(symbol, day_start)
        change = price - previous_close
        shares = int(1e8 + 9.9e9 * _uniform(symbol, "shares"))
        return QuoteData(
            symbol=symbol,
            price=price,
            source=self.name,
            quoted_at=datetime.fromtimestamp(now, tz=UTC),
            previous_close=previous_close,
            change=change,
            change_percent=(change / previous_close * 100).quantize(FOUR_PLACES),
            volume=int(simulated_day_volume(symbol, day_start) * (now - day_start) / 86400),
            high=max(price, previous_close),
            low=min(price, previous_close),
            market_cap=int(price * shares),
        )

    def fetch(self, symbols: list[str], *, permit: Permit) -> dict[str, Answer]:
        # Offline: no request, so nothing to rate-limit.
        return {symbol: self.quote(symbol) for symbol in symbols}
