"""What a cycle fetches: held symbols, symbols with an active alert or on a watchlist, FX pairs,
subscriptions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from backend.alerts.models import Alert
from backend.alerts.services.alerts import alert_create
from backend.dashboard.models import WatchlistItem
from backend.dashboard.services import watchlist_add
from backend.market.selectors import tracked_symbols

pytestmark = pytest.mark.django_db


def test_a_symbol_only_an_active_alert_watches_is_fetched_every_cycle_until_the_alert_ends():
    ann = User.objects.create_user("ann")
    alert = alert_create(owner=ann, symbol="NVDA", condition="above", threshold=Decimal("100"))
    alert_create(owner=ann, symbol="NVDA", condition="below", threshold=Decimal("50"))
    assert tracked_symbols() == ["NVDA"]  # once, however many alerts watch it
    Alert.objects.filter(asset__symbol="NVDA").update(active=False)
    assert alert.asset.symbol not in tracked_symbols()


def test_a_symbol_only_a_watchlist_holds_is_fetched_every_cycle_until_it_is_removed():
    ann, bob = User.objects.create_user("ann"), User.objects.create_user("bob")
    watched = watchlist_add(user_id=ann.pk, symbol="GLD")
    watchlist_add(user_id=bob.pk, symbol="GLD")
    assert tracked_symbols() == ["GLD"]  # once, however many lists hold it
    WatchlistItem.objects.filter(asset=watched.asset).delete()
    assert tracked_symbols() == []
