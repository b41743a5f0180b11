"""A deterministic short-horizon forecast from stored price history (/ws/stock_predictions/).

Model (geometric Brownian motion fitted to the history's log returns): with step returns
r_i = ln(p_i / p_{i-1}) over dt_i minutes, the drift per minute is mu = sum(r) / sum(dt) and
the variance per minute sigma^2 = sum((r_i - mu*dt_i)^2 / dt_i) / (n - 1) (for equal steps:
the sample variance of the returns divided by the step). At a horizon of H minutes,
ln(S_H / S_0) ~ N(mu*H, sigma^2*H), so

  P(S_H > S_0)   = Phi(mu*H / (sigma*sqrt(H)))
  forecast_price = S_0 * exp(mu*H)                       (the median)
  low, high      = S_0 * exp(mu*H -/+ 1.96*sigma*sqrt(H))  (95 % band)

Floats are fine here: these are statistics about prices, not money that is summed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings

from backend.market.models import PriceHistory

MODEL_NAME = "gbm-log-returns-v1"
MIN_POINTS = 20
Z_95 = 1.959963984540054
SIX_PLACES = Decimal("0.000001")
EPSILON = 1e-12


class InsufficientHistory(Exception):
    def __init__(self, symbol: str, points: int) -> None:
        super().__init__(f"{symbol} has {points} stored prices; a forecast needs at least {MIN_POINTS}")
        self.points = points


@dataclass(frozen=True)
class Forecast:
    symbol: str
    probability_up: float  # 0-100
    forecast_price: Decimal
    low: Decimal
    high: Decimal
    horizon_minutes: int
    based_on_points: int
    model: str = MODEL_NAME

    def as_message(self) -> dict[str, object]:
        """The /ws/stock_predictions/ answer (no envelope: the reference client reads `.prediction`)."""
        return {
            "prediction": self.probability_up,
            "symbol": self.symbol,
            "forecast_price": float(self.forecast_price),
            "low": float(self.low),
            "high": float(self.high),
            "horizon_minutes": self.horizon_minutes,
            "based_on_points": self.based_on_points,
            "model": self.model,
        }


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _price(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(SIX_PLACES)


def forecast_compute(*, symbol: str, points: Sequence[tuple[datetime, Decimal]], horizon_minutes: int) -> Forecast:
    """The forecast from (time, price) points, oldest first. Raises InsufficientHistory."""
    if len(points) < MIN_POINTS:
        raise InsufficientHistory(symbol, len(points))
    returns: list[float] = []
    steps: list[float] = []
    for (t0, p0), (t1, p1) in itertools.pairwise(points):
        dt = (t1 - t0).total_seconds() / 60.0
        if dt <= 0 or p0 <= 0 or p1 <= 0:
            continue
        returns.append(math.log(float(p1) / float(p0)))
        steps.append(dt)
    if len(returns) < MIN_POINTS - 1:
        raise InsufficientHistory(symbol, len(returns) + 1)
    mu = sum(returns) / sum(steps)
    variance = sum((r - mu * dt) ** 2 / dt for r, dt in zip(returns, steps, strict=True)) / (len(returns) - 1)
    sigma = math.sqrt(variance)
    horizon = float(horizon_minutes)
    drift = mu * horizon
    spread = sigma * math.sqrt(horizon)
    # Float noise from exp/log round trips is not signal: below EPSILON a quantity is zero.
    if spread > EPSILON:
        probability = _normal_cdf(drift / spread)
    else:
        probability = 1.0 if drift > EPSILON else 0.0 if drift < -EPSILON else 0.5
    last = float(points[-1][1])
    return Forecast(
        symbol=symbol,
        probability_up=round(probability * 100.0, 2),
        forecast_price=_price(last * math.exp(drift)),
        low=_price(last * math.exp(drift - Z_95 * spread)),
        high=_price(last * math.exp(drift + Z_95 * spread)),
        horizon_minutes=horizon_minutes,
        based_on_points=len(returns) + 1,
    )


def forecast_create(*, symbol: str, horizon_minutes: int | None = None) -> Forecast:
    """The forecast from the symbol's latest PREDICTION_HISTORY_POINTS stored prices."""
    horizon = horizon_minutes or settings.PREDICTION_HORIZON_MINUTES
    recent = list(
        PriceHistory.objects.filter(asset__symbol=symbol)
        .order_by("-quoted_at")
        .values_list("quoted_at", "price")[: settings.PREDICTION_HISTORY_POINTS]
    )
    recent.reverse()
    return forecast_compute(symbol=symbol, points=recent, horizon_minutes=horizon)
