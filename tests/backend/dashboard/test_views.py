"""The dashboard and status pages render from the database for the right people."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from backend.dashboard.models import WatchlistItem
from backend.market.models import Asset, Quote
from backend.portfolios.demo import demo_data_seed
from backend.portfolios.models import Portfolio

pytestmark = pytest.mark.django_db


def _initial(html: str) -> dict:
    start = html.index('<script id="dashboard-initial" type="application/json">') + len(
        '<script id="dashboard-initial" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


def test_dashboard_requires_login():
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_login_form_logs_in_with_username_and_password():
    User.objects.create_user("carol", password="pw-carol-123")
    client = Client()
    assert 'name="username"' in client.get("/accounts/login/").content.decode()
    response = client.post("/accounts/login/", {"username": "carol", "password": "pw-carol-123"})
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_dashboard_shows_the_demo_portfolios_with_their_positions_and_the_client_module():
    demo_data_seed(with_logins=True)
    client = Client()
    client.login(username="demo", password="demo")
    html = client.get("/").content.decode()
    for name in ("Growth", "Income &amp; Crypto"):
        assert name in html
    assert "dashboard/dashboard.js" in html
    initial = _initial(html)
    assert len(initial["portfolios"]) == 2
    assert {p["summary"]["name"] for p in initial["portfolios"]} == {"Growth", "Income & Crypto"}
    # The rows dashboard.js draws: every position as REST reads it, with its currency.
    rows = {row["symbol"]: row for p in initial["portfolios"] for row in p["positions"]}
    assert rows["BTC-USD"]["name"] == "Bitcoin USD"
    assert (rows["SAP.DE"]["currency"], rows["VOD.L"]["currency"]) == ("EUR", "GBp")
    assert {"fx_rate", "cost_basis", "current_value"} <= set(rows["SAP.DE"])


def test_dashboard_shows_only_the_users_own_portfolios_and_watchlist():
    me = User.objects.create_user("me", password="pw-me-12345")
    other = User.objects.create_user("other")
    Portfolio.objects.create(owner=other, name="Not mine")
    asset = Asset.objects.create(symbol="KO")
    now = timezone.now()
    Quote.objects.create(asset=asset, price=Decimal("61.5"), source="simulated", quoted_at=now, fetched_at=now)
    WatchlistItem.objects.create(user=me, asset=asset)
    client = Client()
    client.login(username="me", password="pw-me-12345")
    html = client.get("/").content.decode()
    assert "Not mine" not in html
    initial = _initial(html)
    assert initial["watchlist"][0]["symbol"] == "KO"
    assert initial["watchlist"][0]["quote"]["price"] == 61.5


def test_status_page_is_forbidden_to_non_staff_and_links_flower_for_staff(settings):
    settings.FLOWER_URL = "http://flower.example:5555/"
    User.objects.create_user("plain", password="pw-plain-123")
    User.objects.create_user("boss", password="pw-boss-1234", is_staff=True)
    client = Client()
    client.login(username="plain", password="pw-plain-123")
    assert client.get("/status/").status_code == 403
    client.login(username="boss", password="pw-boss-1234")
    response = client.get("/status/")
    assert response.status_code == 200
    assert 'href="http://flower.example:5555/"' in response.content.decode()
