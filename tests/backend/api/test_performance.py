"""GET /api/portfolios/<id>/performance/: the contract's shape, owner only, ranges, and a
benchmark over the same days (figures worked by hand from the closes)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from celery.app.base import Celery
from rest_framework.test import APIClient

from backend.market.models import Asset, PriceHistory, Quote
from backend.performance.services.daily_values import daily_values_derive
from backend.portfolios.models import Portfolio
from backend.portfolios.services.transactions import transaction_buy

from .test_portfolios import ann, bob, token_client  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db
TODAY = datetime.now(UTC).date()
KEYS = {
    "range", "start", "end", "currency", "start_value", "end_value", "net_flows", "twr_percent", "irr_percent",
    "realized_gain", "unrealized_gain", "dividends", "fees", "series",
}  # fmt: skip


@pytest.fixture(autouse=True)
def no_broker(monkeypatch) -> None:
    monkeypatch.setattr(Celery, "send_task", lambda self, name, args=None, kwargs=None, **kw: None)


def closes(symbol: str, prices: dict[int, str]) -> None:
    asset, _ = Asset.objects.get_or_create(symbol=symbol, defaults={"tracking_status": "tracked"})
    for n, price in prices.items():
        if n == 0:
            now = datetime.now(UTC)
            Quote.objects.create(asset=asset, price=Decimal(price), source="t", quoted_at=now, fetched_at=now)
        else:
            at = datetime.combine(TODAY - timedelta(days=n), time(20), tzinfo=UTC)
            PriceHistory.objects.create(asset=asset, quoted_at=at, price=Decimal(price), source="t")


@pytest.fixture
def main(ann) -> Portfolio:  # noqa: F811
    closes("AAPL", {30: "100", 8: "120", 0: "126"})
    portfolio = Portfolio.objects.create(owner=ann, name="Main")
    at = datetime.combine(TODAY - timedelta(days=30), time(21), tzinfo=UTC)
    transaction_buy(
        portfolio=portfolio, symbol="AAPL", quantity=Decimal(10), price=Decimal(100), fee=Decimal(5), executed_at=at
    )
    daily_values_derive(portfolio_id=portfolio.pk, since=date(2000, 1, 1))
    return portfolio


def url(portfolio: Portfolio, query: str = "") -> str:
    return f"/api/portfolios/{portfolio.pk}/performance/{query}"


def test_the_default_range_is_max_with_the_contracts_fields(ann, main):  # noqa: F811
    body = token_client(ann).get(url(main)).json()
    assert set(body) == KEYS
    assert (body["range"], body["currency"]) == ("max", "USD")
    assert (body["start"], body["end"]) == ((TODAY - timedelta(days=31)).isoformat(), TODAY.isoformat())
    assert (body["start_value"], body["end_value"], body["net_flows"]) == (0, 1260.0, 1005.0)
    # the buy's day starts from nothing; then 100 -> 126
    assert body["twr_percent"] == 26.0
    assert body["unrealized_gain"] == 1260.0 - 1005.0
    assert body["series"][0] == {"date": (TODAY - timedelta(days=30)).isoformat(), "value": 1000.0, "net_flows": 1005.0}
    assert len(body["series"]) == 31


def test_percentages_are_rounded_to_two_places(ann, main):  # noqa: F811
    body = token_client(ann).get(url(main, "?range=1w")).json()
    expected_irr = round(((1260 / 1200) ** (365 / 7) - 1) * 100, 2)
    assert body["twr_percent"] == 5.0
    assert abs(body["irr_percent"] - expected_irr) < 0.011
    assert body["irr_percent"] == round(body["irr_percent"], 2)


def test_another_users_portfolio_is_not_found(bob, main):  # noqa: F811
    response = token_client(bob).get(url(main))
    assert response.status_code == 404


def test_an_unknown_range_is_refused_with_its_choices(ann, main):  # noqa: F811
    response = token_client(ann).get(url(main, "?range=2y"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_range"
    assert "ytd" in response.json()["message"]


def test_a_benchmark_adds_its_return_and_closes_over_the_same_days(ann, main):  # noqa: F811
    closes("^GSPC", {40: "5000", 31: "5000", 10: "5100", 0: "5250"})
    body = token_client(ann).get(url(main, "?range=1m&benchmark=^gspc")).json()
    bench = body["benchmark"]
    assert bench["symbol"] == "^GSPC"
    assert bench["return_percent"] == round((5250 / 5000 - 1) * 100, 2)
    assert bench["series"][0]["date"] == body["start"]
    assert bench["series"][-1] == {"date": TODAY.isoformat(), "value": 5250.0}
    assert set(body) == KEYS | {"benchmark"}


@pytest.mark.parametrize("symbol", ["NOPE", "bad symbol!"])
def test_an_unknown_or_untracked_benchmark_is_a_400(ann, main, symbol):  # noqa: F811
    Asset.objects.create(symbol="NOPE", tracking_status=Asset.TrackingStatus.UNKNOWN)
    response = token_client(ann).get(url(main, f"?benchmark={symbol}"))
    assert response.status_code == 400
    assert response.json()["error"] == "unknown_benchmark"


def test_anonymous_calls_are_refused(main):
    assert APIClient().get(url(main)).status_code in (401, 403)
