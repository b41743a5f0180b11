"""Time- and money-weighted returns, pure functions on Decimal (docs/returns.md).

- `twr`: daily returns chain-linked, r_d = (V_d - F_d) / V_{d-1} - 1. A day that starts from
  nothing (V_{d-1} = 0: before the first buy, or after a full sell) has no return to
  contribute, so it is skipped and the chain goes on at the re-buy: a full sell never turns
  the figure into -100 %.
- `xirr`: the annual rate r (actual/365) at which the investor's dated flows are worth
  nothing today: sum(a_i / (1 + r) ** (days_i / 365)) = 0. Solved with Brent's method on a
  bracket where the sum changes sign, searched on [-0.9999, 1e6]; no such bracket (all flows
  one way, or none) -> None. It iterates in float (the answer is a rate, rounded to 2 places
  of a percent when sent) and returns a Decimal.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
LOWEST_RATE = -0.9999
HIGHEST_RATE = 1e6
# Where a sign change of the present value is looked for, outward from 0: a pattern with two
# roots gets the one nearer 0, and the usual one is bracketed after two or three evaluations.
_UP = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0, 1e3, 1e4, 1e5, HIGHEST_RATE)
_DOWN = (0.0, -0.1, -0.25, -0.5, -0.75, -0.9, -0.99, LOWEST_RATE)
_TOLERANCE = 1e-12
_MAX_ITERATIONS = 200


def twr(*, start_value: Decimal, days: Iterable[tuple[Decimal, Decimal]]) -> Decimal:
    """The chain-linked return (a fraction: 0.1 is 10 %) of the days' (V_d, F_d) in order,
    the day before the first worth `start_value`."""
    growth = ONE
    previous = start_value
    for value, flows in days:
        if previous != 0:
            growth *= (value - flows) / previous
        previous = value
    return growth - ONE


def _present_value(rate: float, flows: Sequence[tuple[float, float]]) -> float:
    """sum(a / (1 + rate) ** years); inf-safe for rates near -1 over long spans."""
    log_base = math.log1p(rate)
    total = 0.0
    for years, amount in flows:
        exponent = -years * log_base
        total += amount * math.exp(exponent) if exponent < 700 else math.copysign(math.inf, amount)
    return total


def _brent(flows: Sequence[tuple[float, float]], low: float, high: float, f_low: float, f_high: float) -> float:
    """A root of the present value in [low, high], where it changes sign (Brent 1973:
    inverse quadratic interpolation or secant, falling back to bisection)."""
    a, b, fa, fb = low, high, f_low, f_high
    if abs(fa) < abs(fb):
        a, b, fa, fb = b, a, fb, fa
    c, fc, d = a, fa, a
    bisected = True
    for _ in range(_MAX_ITERATIONS):
        if fb == 0 or abs(b - a) <= _TOLERANCE * max(1.0, abs(b)):
            return b
        if fa != fc and fb != fc:
            s = (
                a * fb * fc / ((fa - fb) * (fa - fc))
                + b * fa * fc / ((fb - fa) * (fb - fc))
                + c * fa * fb / ((fc - fa) * (fc - fb))
            )
        else:
            s = b - fb * (b - a) / (fb - fa)
        lower, upper = sorted(((3 * a + b) / 4, b))
        if (
            not lower < s < upper
            or (bisected and abs(s - b) >= abs(b - c) / 2)
            or (not bisected and abs(s - b) >= abs(c - d) / 2)
        ):
            s = (a + b) / 2
            bisected = True
        else:
            bisected = False
        fs = _present_value(s, flows)
        d, c, fc = c, b, fb
        if (fa < 0) != (fs < 0):
            b, fb = s, fs
        else:
            a, fa = s, fs
        if abs(fa) < abs(fb):
            a, b, fa, fb = b, a, fb, fa
    return b


def _bracket(points: Sequence[tuple[float, float]]) -> tuple[float, float, float, float] | None:
    """An interval (low, high, pv(low), pv(high)) on which the present value changes sign,
    looked for on both sides of 0 step by step."""
    f_zero = _present_value(0.0, points)
    if f_zero == 0:
        return 0.0, 0.0, 0.0, 0.0
    previous = {1: (0.0, f_zero), -1: (0.0, f_zero)}
    for up, down in itertools.zip_longest(_UP[1:], _DOWN[1:]):
        for side, rate in ((1, up), (-1, down)):
            if rate is None:
                continue
            last_rate, last_value = previous[side]
            value = _present_value(rate, points)
            if value == 0 or (value < 0) != (last_value < 0):
                if side == 1:
                    return last_rate, rate, last_value, value
                return rate, last_rate, value, last_value
            previous[side] = (rate, value)
    return None


def xirr(flows: Iterable[tuple[date, Decimal]]) -> Decimal | None:
    """The annualised rate (a fraction) of the investor's flows (negative: paid in, positive:
    received), or None when no rate makes them worth nothing."""
    dated = [(day, amount) for day, amount in flows if amount != 0]
    if not dated:
        return None
    first = min(day for day, _ in dated)
    points = [((day - first).days / 365.0, float(amount)) for day, amount in dated]
    if all(amount > 0 for _, amount in points) or all(amount < 0 for _, amount in points):
        return None
    bracket = _bracket(points)
    if bracket is None:
        return None
    low, high, f_low, f_high = bracket
    if f_low == 0:
        return Decimal(repr(low))
    root = _brent(points, low, high, f_low, f_high)
    if not math.isfinite(root) or abs(_present_value(root, points)) > 1e-6 * max(abs(a) for _, a in points):
        return None
    return Decimal(repr(root))
