"""seed_demo's first screen: every demo asset is held or watched by the demo user (so each
gets prices), every demo asset and pair has simulated daily closes from the ledgers' first
day, and a second run (make run seeds on every start) writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from backend.dashboard.demo import demo_watchlist_seed
from backend.dashboard.models import WatchlistItem
from backend.market.models import Asset, PriceHistory
from backend.market.services.history import simulated_close_times
from backend.market.services.manager import data_source_manager
from backend.portfolios.demo import DEMO_ASSETS, DEMO_LEDGERS, demo_history_days
from backend.portfolios.models import Position

pytestmark = pytest.mark.django_db
DEMO_SYMBOLS = {symbol for symbol, *_ in DEMO_ASSETS}


@pytest.fixture(autouse=True)
def _simulated(settings):
    settings.MARKET_DATA_SOURCES = ["simulated"]
    data_source_manager.cache_clear()
    yield
    data_source_manager.cache_clear()


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_every_demo_asset_is_held_or_on_the_demo_watchlist():
    seed()
    demo = User.objects.get(username="demo")
    held = set(Position.objects.filter(portfolio__owner=demo, quantity__gt=0).values_list("asset__symbol", flat=True))
    watched = set(WatchlistItem.objects.filter(user=demo).values_list("asset__symbol", flat=True))
    assert held | watched == DEMO_SYMBOLS
    assert not held & watched
    assert {"BRK-B", "GLD", "JPM", "META"} <= watched


def test_every_demo_asset_and_pair_has_a_simulated_close_for_every_day_since_the_first_trade():
    before = datetime.now(UTC)
    seed()
    first_day = min(entry.day for entries in DEMO_LEDGERS.values() for entry in entries)
    days = demo_history_days(now=before, at_least=365)
    assert days >= (before.date() - datetime.fromisoformat(first_day).date()).days
    closes = set(simulated_close_times(days=days, now=before))
    for symbol in [*DEMO_SYMBOLS, "EURUSD=X", "GBPUSD=X"]:
        stored = set(PriceHistory.objects.filter(asset__symbol=symbol).values_list("quoted_at", flat=True))
        assert closes <= stored, symbol
        assert min(stored).date().isoformat() <= first_day


def test_a_second_seed_writes_nothing():
    first = seed()
    counts = (PriceHistory.objects.count(), WatchlistItem.objects.count(), Asset.objects.count())
    second = seed()
    assert "9 watchlist items added" in first
    assert "0 assets, 0 portfolios, 0 transactions created, 0 watchlist items added, 0 history bars" in second
    assert (PriceHistory.objects.count(), WatchlistItem.objects.count(), Asset.objects.count()) == counts


def test_a_watchlist_the_demo_user_trimmed_is_not_refilled():
    seed()
    demo = User.objects.get(username="demo")
    WatchlistItem.objects.filter(user=demo).exclude(asset__symbol="META").delete()
    assert demo_watchlist_seed(user_id=demo.pk) == 0
    seed()
    assert list(WatchlistItem.objects.filter(user=demo).values_list("asset__symbol", flat=True)) == ["META"]


def test_no_simulated_history_is_mixed_into_a_real_sources_history(settings):
    settings.MARKET_DATA_SOURCES = ["yahoo"]
    data_source_manager.cache_clear()
    out = seed()
    assert "no simulated history (real source)" in out
    assert not PriceHistory.objects.filter(source="simulated").exists()
