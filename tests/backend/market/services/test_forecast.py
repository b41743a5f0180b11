"""The forecast's numbers, checked by hand.

Series used: 21 prices one minute apart starting at 100, log returns alternating +0.02 and
-0.01. By hand: mean return m = (10*0.02 - 10*0.01) / 20 = 0.005 per minute; every deviation
is +-0.015, so the sample variance is 20 * 0.015^2 / 19 = 0.000236842, s = 0.0153897.
At H = 60: drift = 0.3, spread = s*sqrt(60) = 0.119208, z = 0.3 / 0.119208 = 2.51661,
Phi(z) = 0.994076 -> 99.41 %. Last price = 100*e^0.1 = 110.517092; median forecast =
110.517092*e^0.3 = 149.182470; 95 % band = 110.517092*e^(0.3 -+ 1.96*0.119208) =
118.099439 .. 188.446359.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from backend.market.models import Asset, PriceHistory
from backend.market.services.forecast import InsufficientHistory, forecast_compute, forecast_create

T0 = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def _series(returns: list[float], step_minutes: float = 1.0, start: float = 100.0):
    points = [(T0, Decimal(repr(start)))]
    log_price = math.log(start)
    for i, r in enumerate(returns, start=1):
        log_price += r
        points.append((T0 + timedelta(minutes=step_minutes * i), Decimal(repr(math.exp(log_price)))))
    return points


ALTERNATING = [0.02, -0.01] * 10


def test_alternating_returns_give_the_hand_computed_probability_and_band():
    forecast = forecast_compute(symbol="AAPL", points=_series(ALTERNATING), horizon_minutes=60)
    assert forecast.probability_up == 99.41
    assert float(forecast.forecast_price) == pytest.approx(149.182470, abs=2e-6)
    assert float(forecast.low) == pytest.approx(118.099439, abs=2e-6)
    assert float(forecast.high) == pytest.approx(188.446359, abs=2e-6)
    assert forecast.based_on_points == 21
    assert forecast.horizon_minutes == 60
    assert forecast.model == "gbm-log-returns-v1"


def test_two_minute_steps_halve_the_per_minute_drift_and_variance():
    # drift = 0.15, spread = sqrt(0.000236842 / 2 * 60) = 0.0842927, z = 1.77951 -> 96.24 %
    forecast = forecast_compute(symbol="AAPL", points=_series(ALTERNATING, step_minutes=2), horizon_minutes=60)
    assert forecast.probability_up == 96.24


def test_mirror_image_series_is_as_likely_to_fall():
    falling = forecast_compute(symbol="X", points=_series([-r for r in ALTERNATING]), horizon_minutes=60)
    assert falling.probability_up == pytest.approx(100 - 99.41, abs=0.011)


def test_no_volatility_gives_certainty_in_the_direction_of_the_drift_and_a_point_band():
    rising = forecast_compute(symbol="X", points=_series([0.001] * 20), horizon_minutes=10)
    assert rising.probability_up == 100.0
    assert rising.low == rising.forecast_price == rising.high
    flat = forecast_compute(symbol="X", points=_series([0.0] * 20), horizon_minutes=10)
    assert flat.probability_up == 50.0


def test_the_same_history_always_gives_the_same_answer():
    points = _series(ALTERNATING)
    assert forecast_compute(symbol="A", points=points, horizon_minutes=30) == forecast_compute(
        symbol="A", points=points, horizon_minutes=30
    )


def test_fewer_than_twenty_points_is_insufficient_history():
    with pytest.raises(InsufficientHistory) as caught:
        forecast_compute(symbol="AAPL", points=_series([0.01] * 18), horizon_minutes=60)
    assert caught.value.points == 19


@pytest.mark.django_db
def test_forecast_create_reads_the_latest_stored_history_oldest_first(settings):
    settings.PREDICTION_HORIZON_MINUTES = 60
    asset = Asset.objects.create(symbol="AAPL")
    # Stored with 6 decimal places, as the pipeline stores them.
    rows = [
        PriceHistory(asset=asset, quoted_at=t, price=p.quantize(Decimal("0.000001")), source="simulated")
        for t, p in _series(ALTERNATING)
    ]
    PriceHistory.objects.bulk_create(reversed(rows))
    forecast = forecast_create(symbol="AAPL")
    assert forecast.probability_up == 99.41
    assert forecast.based_on_points == 21
    assert float(forecast.forecast_price) == pytest.approx(149.18247, abs=1e-4)
