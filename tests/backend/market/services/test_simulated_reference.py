"""The simulated source's reference anchoring: well-known symbols sit near their simulated
reference level, pass exactly through each pinned close, stay continuous and deterministic
across processes, and a history bar holds what a quote at its time said."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial

import pytest

from backend.market.models import Asset, PriceHistory
from backend.market.services.history import history_load, simulated_close_times
from backend.market.services.sources.reference_levels import REFERENCE_DAY, REFERENCES
from backend.market.services.sources.simulated import (
    CLOSE_HOUR,
    SECONDS_PER_YEAR,
    SimulatedSource,
    simulated_price,
    simulated_value,
)
from backend.portfolios.demo import DEMO_ASSETS, DEMO_LEDGERS
from tests.live import BASE_DIR

D = Decimal


def close_at(day: str | date) -> float:
    return datetime.fromisoformat(str(day)).replace(hour=CLOSE_HOUR, tzinfo=UTC).timestamp()


def test_every_demo_asset_has_a_simulated_reference_level():
    assert {symbol for symbol, *_ in DEMO_ASSETS} <= set(REFERENCES)


@pytest.mark.parametrize("symbol", sorted(REFERENCES))
def test_a_reference_symbol_closes_at_its_level_on_the_reference_day_and_every_year_after(symbol):
    level = REFERENCES[symbol].level
    for years in (0, 1, 2):
        at = close_at(REFERENCE_DAY) + years * SECONDS_PER_YEAR
        assert simulated_price(symbol, at) == pytest.approx(level, rel=1e-9), years


@pytest.mark.parametrize("symbol", sorted(REFERENCES))
def test_a_reference_symbol_is_near_its_level_days_after_a_pin(symbol):
    """`make run` in the days after a pin: the first screen shows familiar prices."""
    level = REFERENCES[symbol].level
    for days in (1, 3, 6):
        price = simulated_price(symbol, close_at(REFERENCE_DAY) + SECONDS_PER_YEAR + days * 86400 - 4 * 3600)
        assert abs(price / level - 1) < 0.2, (days, price)


def test_the_demo_ledger_trades_are_their_days_simulated_closes():
    trades = [(e.symbol, e.day, e.price) for entries in DEMO_LEDGERS.values() for e in entries if e.price and e.symbol]
    assert len(trades) >= 15
    for symbol, day, price in trades:
        assert abs(simulated_value(symbol, close_at(day)) - D(price)) < D("0.01"), (symbol, day)


def test_the_anchored_path_is_continuous_across_pins_and_between_seconds():
    for symbol in ("AAPL", "NVDA", "BTC-USD", "^GSPC"):
        for pin in [close_at(day) for day, _ in REFERENCES[symbol].earlier] + [close_at(REFERENCE_DAY)]:
            before, at, after = (simulated_price(symbol, pin + d) for d in (-1, 0, 1))
            assert abs(before / at - 1) < 0.002, (symbol, pin)
            assert abs(after / at - 1) < 0.002, (symbol, pin)


def test_the_path_before_2025_moves_like_after_it():
    """History bars of 2024 (the demo ledgers' year) are not a smooth curve."""
    closes = [simulated_price("MSFT", close_at("2024-06-01") + n * 86400) for n in range(30)]
    moves = [b / a - 1 for a, b in itertools.pairwise(closes)]
    assert max(moves) > 0.003
    assert min(moves) < -0.003


def test_prices_are_the_same_in_another_process_with_another_hash_seed():
    stamps = [close_at("2024-03-11"), close_at(REFERENCE_DAY) + 12345, 1_790_000_000.0]
    symbols = ["AAPL", "^GSPC", "VOD.L", "EURUSD=X", "NOTAREFERENCE"]
    here = {f"{s}@{t}": str(simulated_value(s, t)) for s in symbols for t in stamps}
    code = (
        "import json, sys; from backend.market.services.sources.simulated import simulated_value; "
        f"print(json.dumps({{f'{{s}}@{{t}}': str(simulated_value(s, t)) for s in {symbols!r} for t in {stamps!r}}}))"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, check=True, text=True
    )
    assert json.loads(out.stdout) == here


@pytest.mark.django_db
def test_a_simulated_history_bar_holds_what_a_quote_at_its_time_said(settings):
    settings.MARKET_DATA_SOURCES = ["simulated"]
    for symbol in ("AAPL", "VOD.L", "EURUSD=X", "NOTAREFERENCE"):
        Asset.objects.create(symbol=symbol)
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    loaded = history_load(symbols=["AAPL", "VOD.L", "EURUSD=X", "NOTAREFERENCE"], days=10, now=now)
    assert loaded.inserted == 40
    for bar in PriceHistory.objects.select_related("asset"):
        quote = SimulatedSource(clock=partial(float, bar.quoted_at.timestamp())).quote(bar.asset.symbol)
        assert (bar.price, bar.source) == (quote.price, "simulated")
    assert max(PriceHistory.objects.values_list("quoted_at", flat=True)) == simulated_close_times(days=1, now=now)[0]
