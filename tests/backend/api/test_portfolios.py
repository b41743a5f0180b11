"""Portfolio REST API: owner only, validated input, live figures rounded at the edge."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from celery.app.base import Celery
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from backend.market.models import Asset, Quote
from backend.portfolios.models import Portfolio, Position

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)


def quote(symbol: str, price: str, previous_close: str | None = None) -> None:
    asset, _ = Asset.objects.get_or_create(symbol=symbol, defaults={"tracking_status": Asset.TrackingStatus.TRACKED})
    Quote.objects.create(
        asset=asset,
        price=Decimal(price),
        previous_close=Decimal(previous_close) if previous_close else None,
        source="test",
        quoted_at=NOW,
        fetched_at=NOW,
    )


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, dict]]:
    """Tasks enqueued (by name), instead of reaching the broker."""
    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        Celery, "send_task", lambda self, name, args=None, kwargs=None, **kw: calls.append((name, kwargs))
    )
    return calls


def revaluations(sent: list[tuple[str, dict]]) -> list[dict]:
    """The revaluations among what was enqueued (a new holding also queues its history
    backfill and the daily values' re-derivation: tested where those live)."""
    return [kwargs for name, kwargs in sent if name == "tasks.portfolios.revalue_portfolio"]


@pytest.fixture
def ann() -> User:
    return User.objects.create_user("ann", password="pw-ann-123")


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password="pw-bob-123")


def token_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def api(ann) -> APIClient:
    return token_client(ann)


@pytest.fixture
def bobs_portfolio(bob) -> Portfolio:
    quote("AAPL", "190.50", "188.00")
    portfolio = Portfolio.objects.create(owner=bob, name="Bob's")
    Position.objects.create(
        portfolio=portfolio, asset=Asset.objects.get(symbol="AAPL"), quantity=Decimal(1), average_cost=Decimal(100)
    )
    return portfolio


def test_create_list_read_rename_and_delete_a_portfolio(api):
    created = api.post("/api/portfolios/", {"name": "  Main  "}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "Main"
    assert body["total_value"] == 0
    assert body["positions"] == []
    pk = body["id"]
    assert [p["id"] for p in api.get("/api/portfolios/").json()] == [pk]
    assert api.get(f"/api/portfolios/{pk}/").json()["name"] == "Main"
    renamed = api.patch(f"/api/portfolios/{pk}/", {"name": "Core"}, format="json")
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Core"
    assert api.delete(f"/api/portfolios/{pk}/").status_code == 204
    assert not Portfolio.objects.exists()
    assert api.get(f"/api/portfolios/{pk}/").status_code == 404


def test_positions_add_change_remove_with_live_figures_and_revaluation_after_commit(
    api, ann, sent, django_capture_on_commit_callbacks
):
    quote("AAPL", "190.50", "188.00")
    quote("BTC-USD", "64250.123456", "63000")
    portfolio = Portfolio.objects.create(owner=ann, name="Main")
    url = f"/api/portfolios/{portfolio.pk}/positions/"
    with django_capture_on_commit_callbacks(execute=True):
        added = api.post(url, {"symbol": "aapl", "quantity": "10", "average_cost": "150.00"}, format="json")
    assert added.status_code == 201
    assert added.json() == {
        "symbol": "AAPL",
        "quantity": 10.0,
        "average_cost": 150.0,
        "current_price": 190.5,
        "current_value": 1905.0,
        "daily_change": 25.0,
        "total_return": 405.0,
        "total_return_percent": 27.0,
        "priced": True,
        "currency": "USD",
        "fx_rate": 1.0,
        "cost_basis": 1500.0,
        "realized_gain": 0.0,
        "dividends": 0.0,
    }
    assert revaluations(sent) == [{"portfolio_id": portfolio.pk}]
    api.post(url, {"symbol": "BTC-USD", "quantity": "0.5", "average_cost": 30000}, format="json")
    body = api.get(f"/api/portfolios/{portfolio.pk}/").json()
    # 1905.00 + 0.5*64250.123456 = 34030.061728; cost 1500 + 15000
    assert body["total_value"] == 34030.06
    assert body["total_cost"] == 16500.0
    assert body["total_return_percent"] == 106.24  # 17530.061728 / 16500 * 100 = 106.2428...
    assert [p["symbol"] for p in body["positions"]] == ["AAPL", "BTC-USD"]
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        changed = api.patch(f"{url}AAPL/", {"quantity": "12.5"}, format="json")
    assert changed.status_code == 200
    assert changed.json()["current_value"] == 2381.25
    assert Position.objects.get(asset__symbol="AAPL").average_cost == Decimal("150")
    assert revaluations(sent) == [{"portfolio_id": portfolio.pk}]
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"{url}aapl/").status_code == 204
    assert list(Position.objects.values_list("asset__symbol", flat=True)) == ["BTC-USD"]
    assert len(revaluations(sent)) == 2


def test_an_unknown_well_formed_symbol_becomes_tracked_and_is_fetched(
    api, ann, sent, django_capture_on_commit_callbacks
):
    portfolio = Portfolio.objects.create(owner=ann, name="Main")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/portfolios/{portfolio.pk}/positions/",
            {"symbol": "brk/b", "quantity": "0.0012345678", "average_cost": "400.123456"},
            format="json",
        )
    assert response.status_code == 201
    assert response.json()["priced"] is False
    assert response.json()["current_value"] is None
    assert Asset.objects.get(symbol="BRK/B").tracking_status == Asset.TrackingStatus.PENDING
    assert Position.objects.get().quantity == Decimal("0.0012345678")
    assert ("tasks.prices.fetch_price_batch", {"symbols": ["BRK/B"], "run_id": None, "force": True}) in sent
    assert api.get(f"/api/portfolios/{portfolio.pk}/").json()["unpriced_positions"] == 1
    assert api.delete(f"/api/portfolios/{portfolio.pk}/positions/BRK/B/").status_code == 204


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "", None),
        ("patch", "", {"name": "Mine now"}),
        ("delete", "", None),
        ("post", "positions/", {"symbol": "MSFT", "quantity": "1", "average_cost": "1"}),
        ("patch", "positions/AAPL/", {"quantity": "5"}),
        ("delete", "positions/AAPL/", None),
    ],
)
def test_another_users_portfolio_is_404_on_every_verb(api, bobs_portfolio, method, path, body):
    response = getattr(api, method)(f"/api/portfolios/{bobs_portfolio.pk}/{path}", body, format="json")
    assert response.status_code == 404
    bobs_portfolio.refresh_from_db()
    assert bobs_portfolio.name == "Bob's"
    assert Position.objects.get(portfolio=bobs_portfolio).quantity == 1
    assert not Asset.objects.filter(symbol="MSFT").exists()


def test_a_missing_portfolio_and_position_are_404(api, ann):
    portfolio = Portfolio.objects.create(owner=ann, name="Main")
    assert api.get("/api/portfolios/999999/").status_code == 404
    assert (
        api.patch(f"/api/portfolios/{portfolio.pk}/positions/MSFT/", {"quantity": "1"}, format="json").status_code
        == 404
    )
    assert api.delete(f"/api/portfolios/{portfolio.pk}/positions/bad%20symbol/").status_code == 404


def test_the_list_shows_only_my_portfolios(api, ann, bobs_portfolio):
    Portfolio.objects.create(owner=ann, name="Mine")
    assert [p["name"] for p in api.get("/api/portfolios/").json()] == ["Mine"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"symbol": "AAPL", "quantity": "0", "average_cost": "1"}, "quantity", "greater than 0"),
        ({"symbol": "AAPL", "quantity": "-2", "average_cost": "1"}, "quantity", "greater than 0"),
        ({"symbol": "AAPL", "quantity": "lots", "average_cost": "1"}, "quantity", "valid number"),
        ({"symbol": "AAPL", "quantity": "0.00000000001", "average_cost": "1"}, "quantity", "decimal places"),
        ({"symbol": "AAPL", "quantity": "1", "average_cost": "-0.01"}, "average_cost", "greater than or equal to 0"),
        ({"symbol": "not a symbol!", "quantity": "1", "average_cost": "1"}, "symbol", "1-20 characters"),
        ({"symbol": "A" * 21, "quantity": "1", "average_cost": "1"}, "symbol", "1-20 characters"),
        ({"quantity": "1", "average_cost": "1"}, "symbol", "required"),
        ({"symbol": "AAPL", "average_cost": "1"}, "quantity", "required"),
    ],
)
def test_bad_position_input_is_400_with_field_errors_and_changes_nothing(api, ann, body, field, message):
    portfolio = Portfolio.objects.create(owner=ann, name="Main")
    response = api.post(f"/api/portfolios/{portfolio.pk}/positions/", body, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert not Position.objects.exists()


def test_bad_portfolio_and_position_changes_are_400(api, ann):
    quote("AAPL", "190.50")
    Portfolio.objects.create(owner=ann, name="Taken")
    portfolio = Portfolio.objects.create(owner=ann, name="Main")
    assert api.post("/api/portfolios/", {"name": ""}, format="json").json() == {
        "name": ["This field may not be blank."]
    }
    assert "already have" in api.post("/api/portfolios/", {"name": "Taken"}, format="json").json()["name"][0]
    assert (
        "already have"
        in api.patch(f"/api/portfolios/{portfolio.pk}/", {"name": "Taken"}, format="json").json()["name"][0]
    )
    url = f"/api/portfolios/{portfolio.pk}/positions/"
    assert api.post(url, {"symbol": "AAPL", "quantity": "1", "average_cost": "1"}, format="json").status_code == 201
    again = api.post(url, {"symbol": "AAPL", "quantity": "1", "average_cost": "1"}, format="json")
    assert again.status_code == 400
    assert "already in this portfolio" in again.json()["symbol"][0]
    assert api.patch(f"{url}AAPL/", {}, format="json").status_code == 400
    zero = api.patch(f"{url}AAPL/", {"quantity": 0}, format="json")
    assert zero.status_code == 400
    assert list(zero.json()) == ["quantity"]
    assert Position.objects.get().quantity == 1


def test_anonymous_requests_are_refused(bobs_portfolio):
    client = APIClient()
    assert client.get("/api/portfolios/").status_code in (401, 403)
    assert client.get(f"/api/portfolios/{bobs_portfolio.pk}/").status_code in (401, 403)


def test_a_token_from_the_token_endpoint_authenticates(ann):
    client = APIClient()
    token = client.post("/api/auth/token/", {"username": "ann", "password": "pw-ann-123"}, format="json").json()[
        "token"
    ]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.post("/api/portfolios/", {"name": "Via token"}, format="json").status_code == 201


def test_session_auth_needs_the_csrf_token(ann):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="ann", password="pw-ann-123")
    assert client.get("/api/portfolios/").status_code == 200
    assert client.post("/api/portfolios/", {"name": "No CSRF"}, format="json").status_code == 403
    client.get("/accounts/login/")  # sets the csrftoken cookie
    csrf = client.cookies["csrftoken"].value
    assert (
        client.post("/api/portfolios/", {"name": "With CSRF"}, format="json", HTTP_X_CSRFTOKEN=csrf).status_code == 201
    )
