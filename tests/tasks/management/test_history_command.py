"""`update_asset_prices --historical` with no --symbols: the daily closes of every held or
watched symbol and of the FX pairs the held ones convert through, not of idle assets."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import override_settings

from backend.dashboard.models import WatchlistItem
from backend.market.models import Asset, PriceHistory
from backend.market.services.manager import data_source_manager
from tests.tasks.prices_helpers import hold

pytestmark = pytest.mark.django_db(transaction=True)


@override_settings(MARKET_DATA_SOURCES=["simulated"])
def test_historical_without_symbols_loads_held_watched_and_pair_history_only():
    data_source_manager.cache_clear()  # built from the settings above (the suite's default too)
    hold(["AAPL", "SAP.DE"])  # SAP.DE trades in EUR, held in a USD portfolio
    Asset.objects.create(symbol="EURUSD=X")
    Asset.objects.create(symbol="IDLE")
    WatchlistItem.objects.create(user=User.objects.create_user("bob"), asset=Asset.objects.create(symbol="META"))
    out = StringIO()
    call_command("update_asset_prices", "--historical", "--days", "3", stdout=out)
    counts = {
        symbol: PriceHistory.objects.filter(asset__symbol=symbol, price__gt=Decimal(0)).count()
        for symbol in ("AAPL", "SAP.DE", "EURUSD=X", "META", "IDLE")
    }
    # Three closes each (the forced refresh adds a quote's row for the tracked symbols, the
    # watched one among them).
    assert all(counts[s] >= 3 for s in ("AAPL", "SAP.DE", "EURUSD=X", "META"))
    assert counts["IDLE"] == 0
    assert "history: 12 bars over 3 days, new for 4 symbols" in out.getvalue()
