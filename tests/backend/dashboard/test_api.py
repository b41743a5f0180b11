"""The dashboard's JSON endpoints and the /api/prices/ endpoints (docs/protocol.md)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from backend.dashboard.models import WatchlistItem
from backend.market.models import Asset, PriceHistory, Quote, RefreshRun
from backend.portfolios.models import Portfolio, PortfolioSnapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def user() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _quote(symbol: str, price: str, previous: str = "100") -> Asset:
    asset = Asset.objects.create(symbol=symbol, tracking_status=Asset.TrackingStatus.TRACKED)
    now = timezone.now()
    Quote.objects.create(
        asset=asset, price=Decimal(price), previous_close=Decimal(previous), source="simulated",
        quoted_at=now, fetched_at=now, change=Decimal(price) - Decimal(previous),
    )  # fmt: skip
    return asset


def test_price_detail_answers_the_asset_update_fields_with_json_numbers(api):
    _quote("BRK/B", "412.345678")
    response = api.get("/api/prices/brk/b/")
    assert response.status_code == 200
    body = response.json()
    assert body["symbol"] == "BRK/B"
    assert body["price"] == 412.345678
    assert body["change"] == 312.35
    assert set(body) == {
        "symbol", "price", "change", "change_percent", "volume", "high", "low",
        "market_cap", "previous_close", "last_updated", "source",
    }  # fmt: skip


def test_price_detail_rejects_a_malformed_symbol_and_404s_an_untracked_one(api):
    bad = api.get("/api/prices/AA PL!/")
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_symbol"
    assert api.get("/api/prices/NOPE/").status_code == 404


def test_price_history_lists_the_window_oldest_first(api):
    asset = _quote("AAPL", "190")
    now = timezone.now()
    for minutes, price in [(5, "189"), (1, "191"), (3, "190"), (60 * 24 * 3, "150")]:
        PriceHistory.objects.create(
            asset=asset, quoted_at=now - timedelta(minutes=minutes), price=Decimal(price), source="simulated"
        )
    one_day = api.get("/api/prices/AAPL/history/?days=1").json()
    assert [p["price"] for p in one_day] == [189.0, 190.0, 191.0]
    assert set(one_day[0]) == {"quoted_at", "price", "volume", "source"}
    assert len(api.get("/api/prices/AAPL/history/?days=7").json()) == 4


@pytest.mark.parametrize("days", ["0", "abc", "366"])
def test_price_history_rejects_a_bad_days_value(api, days):
    _quote("AAPL", "190")
    response = api.get(f"/api/prices/AAPL/history/?days={days}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_days"


def test_prices_need_authentication():
    assert APIClient().get("/api/prices/AAPL/").status_code in (401, 403)


def test_watchlist_add_tracks_a_new_symbol_and_lists_it_for_the_user(api, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post("/dashboard/watchlist/", {"symbol": " tsla "}, format="json")
    assert response.status_code == 201
    assert response.json()["symbol"] == "TSLA"
    assert response.json()["quote"] is None
    assert Asset.objects.get(symbol="TSLA").tracking_status == Asset.TrackingStatus.PENDING
    assert len(callbacks) == 1  # asset_track's forced fetch, after commit
    assert [row["symbol"] for row in api.get("/dashboard/watchlist/").json()] == ["TSLA"]
    again = api.post("/dashboard/watchlist/", {"symbol": "TSLA"}, format="json")
    assert again.status_code == 201
    assert WatchlistItem.objects.filter(user=user).count() == 1


def test_watchlist_add_returns_the_latest_quote_and_recent_prices(api):
    asset = _quote("MSFT", "420")
    PriceHistory.objects.create(asset=asset, quoted_at=timezone.now(), price=Decimal("419"), source="simulated")
    body = api.post("/dashboard/watchlist/", {"symbol": "MSFT"}, format="json").json()
    assert body["quote"]["price"] == 420.0
    assert body["history"] == [419.0]


@pytest.mark.parametrize("symbol", ["", "AAPL!", "A" * 21, None, 42])
def test_watchlist_add_rejects_a_malformed_symbol_with_invalid_symbol(api, symbol):
    response = api.post("/dashboard/watchlist/", {"symbol": symbol}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_symbol"
    assert WatchlistItem.objects.count() == 0


def test_watchlist_add_rejects_a_symbol_the_sources_called_unknown(api):
    Asset.objects.create(symbol="ZZZZ", tracking_status=Asset.TrackingStatus.UNKNOWN)
    response = api.post("/dashboard/watchlist/", {"symbol": "zzzz"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_symbol"
    assert WatchlistItem.objects.count() == 0


def test_watchlist_remove_deletes_only_the_users_own_item(api, user):
    other = User.objects.create_user("bob")
    asset = _quote("^GSPC", "5000")
    WatchlistItem.objects.create(user=user, asset=asset)
    WatchlistItem.objects.create(user=other, asset=asset)
    assert api.delete("/dashboard/watchlist/%5EGSPC/").status_code == 204
    assert api.delete("/dashboard/watchlist/%5EGSPC/").status_code == 404
    assert WatchlistItem.objects.filter(user=other).count() == 1


def test_watchlist_remove_handles_a_symbol_with_a_slash(api, user):
    WatchlistItem.objects.create(user=user, asset=_quote("BRK/B", "400"))
    assert api.delete("/dashboard/watchlist/BRK%2FB/").status_code == 204


def test_watchlist_writes_need_the_csrf_token_with_a_session(user):
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="alice", password="pw-alice-123")
    assert client.post("/dashboard/watchlist/", {"symbol": "AAPL"}, format="json").status_code == 403


def test_portfolio_values_are_the_users_snapshots_oldest_first_and_thinned(api, user):
    portfolio = Portfolio.objects.create(owner=user, name="P")
    now = timezone.now()
    for i in range(300):
        PortfolioSnapshot.objects.create(
            portfolio=portfolio, valued_at=now - timedelta(minutes=300 - i), total_value=Decimal(1000 + i),
            total_cost=Decimal(900), daily_change=Decimal(0),
        )  # fmt: skip
    points = api.get(f"/dashboard/portfolios/{portfolio.pk}/values/?days=1").json()
    assert len(points) == 240
    assert points[0]["v"] == 1000.0
    assert points[-1]["v"] == 1299.0
    assert [p["v"] for p in points] == sorted(p["v"] for p in points)


def test_portfolio_values_of_someone_elses_portfolio_are_not_found(api):
    other = Portfolio.objects.create(owner=User.objects.create_user("bob"), name="B")
    assert api.get(f"/dashboard/portfolios/{other.pk}/values/").status_code == 404


def test_status_data_is_for_staff_only(api, user):
    assert api.get("/status/data/").status_code == 403
    user.is_staff = True
    user.save()
    assert api.get("/status/data/").status_code == 200


def test_status_data_reports_cycles_problem_symbols_and_sources(api, user):
    user.is_staff = True
    user.save()
    run = RefreshRun.objects.create(symbols_requested=3, symbols_succeeded=2, symbols_failed=1)
    RefreshRun.objects.filter(pk=run.pk).update(finished_at=run.started_at + timedelta(seconds=2.5))
    Asset.objects.create(symbol="GONE", tracking_status=Asset.TrackingStatus.UNKNOWN, unknown_since=timezone.now())
    Asset.objects.create(symbol="FLAKY", tracking_status=Asset.TrackingStatus.FAILING, last_error="timeout")
    _quote("AAPL", "190")
    body = api.get("/status/data/").json()
    assert body["runs"][0]["duration_seconds"] == 2.5
    assert body["runs"][0]["symbols_failed"] == 1
    assert {p["symbol"]: p["status"] for p in body["problem_symbols"]} == {"GONE": "unknown", "FLAKY": "failing"}
    assert {"name": "simulated", "priority": 1}.items() <= body["sources"][0].items()
    assert body["sources"][0]["latest_quotes"] == 1
    assert "connections" in body
    assert "source_health" in body
