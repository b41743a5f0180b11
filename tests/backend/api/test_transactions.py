"""Transactions REST API: the ledger's contract over HTTP, owner only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from celery.app.base import Celery
from rest_framework.test import APIClient

from backend.market.models import Asset
from backend.portfolios.models import Portfolio, Position, Transaction

from .test_portfolios import ann, bob, quote, token_client  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_broker(monkeypatch) -> None:
    monkeypatch.setattr(Celery, "send_task", lambda self, name, args=None, kwargs=None, **kw: None)


@pytest.fixture
def api(ann) -> APIClient:  # noqa: F811
    return token_client(ann)


@pytest.fixture
def main(ann) -> Portfolio:  # noqa: F811
    quote("AAPL", "120.00", "118.00")
    return Portfolio.objects.create(owner=ann, name="Main")


def url(portfolio: Portfolio, rest: str = "") -> str:
    return f"/api/portfolios/{portfolio.pk}/transactions/{rest}"


def test_post_list_read_and_delete_transactions(api, main):
    bought = api.post(
        url(main),
        {
            "type": "buy",
            "symbol": "aapl",
            "quantity": "10",
            "price": "100",
            "fee": "5",
            "executed_at": "2026-03-02T15:00:00Z",
        },
        format="json",
    )
    assert bought.status_code == 201
    body = bought.json()
    assert body == {
        "id": body["id"],
        "type": "buy",
        "symbol": "AAPL",
        "quantity": 10.0,
        "price": 100.0,
        "fee": 5.0,
        "amount": None,
        "ratio": None,
        "currency": "USD",
        "fx_rate": 1.0,
        "executed_at": "2026-03-02T15:00:00Z",
        "external_id": None,
        "created_at": body["created_at"],
    }
    sold = api.post(
        url(main), {"type": "sell", "symbol": "AAPL", "quantity": "4", "price": "120", "fee": "2"}, format="json"
    )
    assert sold.status_code == 201
    api.post(url(main), {"type": "dividend", "symbol": "AAPL", "amount": "12.5"}, format="json")
    api.post(url(main), {"type": "fee", "amount": "7.5"}, format="json")
    listed = api.get(url(main)).json()
    assert [t["type"] for t in listed] == ["buy", "sell", "dividend", "fee"]
    assert api.get(url(main, f"{body['id']}/")).json()["id"] == body["id"]
    portfolio = api.get(f"/api/portfolios/{main.pk}/").json()
    # cost 1005 -> 603 after selling 4 (gain 478 - 402 = 76); 6 * 120 = 720
    assert portfolio["currency"] == "USD"
    assert (portfolio["realized_gain"], portfolio["dividends"], portfolio["fees"]) == (76.0, 12.5, 7.5)
    assert (portfolio["total_value"], portfolio["total_cost"]) == (720.0, 603.0)
    assert portfolio["total_return"] == 198.0  # 720 - 603 + 76 + 12.5 - 7.5
    (position,) = portfolio["positions"]
    assert position["cost_basis"] == 603.0
    assert (position["currency"], position["fx_rate"], position["realized_gain"]) == ("USD", 1.0, 76.0)
    assert api.delete(url(main, f"{sold.json()['id']}/")).status_code == 204
    assert Position.objects.get(portfolio=main).quantity == 10


def test_refusals_answer_the_contract_errors_and_change_nothing(api, main):
    api.post(
        url(main),
        {"type": "buy", "symbol": "AAPL", "quantity": "10", "price": "100", "executed_at": "2026-03-02T00:00:00Z"},
        format="json",
    )
    sell = {"type": "sell", "symbol": "AAPL", "quantity": "8", "price": "110", "executed_at": "2026-03-04T00:00:00Z"}
    assert api.post(url(main), sell, format="json").status_code == 201
    too_much = api.post(url(main), {**sell, "quantity": "3"}, format="json")
    assert too_much.status_code == 400
    assert too_much.json()["error"] == "insufficient_quantity"
    buy = Transaction.objects.get(portfolio=main, type="buy")
    refused = api.delete(url(main, f"{buy.pk}/"))
    assert refused.status_code == 409
    assert refused.json()["error"] == "insufficient_quantity"
    assert Transaction.objects.filter(portfolio=main).count() == 2
    assert Position.objects.get(portfolio=main).quantity == 2
    foreign = api.post(url(main), {"type": "buy", "symbol": "SAP.DE", "quantity": "1", "price": "100"}, format="json")
    assert foreign.status_code == 400
    assert foreign.json()["error"] == "fx_unavailable"
    assert Asset.objects.filter(symbol="EURUSD=X").exists()  # tracked: the rate is on its way
    bad = api.post(url(main), {"type": "split", "symbol": "AAPL", "ratio": "two"}, format="json")
    assert bad.status_code == 400
    assert list(bad.json()) == ["ratio"]
    assert api.post(url(main), {"type": "swap"}, format="json").status_code == 400


def test_an_external_id_posted_twice_answers_200_with_the_first(api, main):
    data = {"type": "buy", "symbol": "AAPL", "quantity": "1", "price": "100", "external_id": "B-1"}
    first = api.post(url(main), data, format="json")
    again = api.post(url(main), data, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Transaction.objects.count() == 1


def test_another_users_ledger_is_404(api, bob):  # noqa: F811
    quote("AAPL", "120.00")
    theirs = Portfolio.objects.create(owner=bob, name="Bob's")
    row = token_client(bob).post(
        url(theirs), {"type": "buy", "symbol": "AAPL", "quantity": "1", "price": "1"}, format="json"
    )
    assert row.status_code == 201
    assert api.get(url(theirs)).status_code == 404
    assert api.post(url(theirs), {"type": "fee", "amount": "1"}, format="json").status_code == 404
    assert api.get(url(theirs, f"{row.json()['id']}/")).status_code == 404
    assert api.delete(url(theirs, f"{row.json()['id']}/")).status_code == 404
    assert Transaction.objects.count() == 1


def test_the_position_shortcuts_write_the_ledger(api, main):
    positions = f"/api/portfolios/{main.pk}/positions/"
    assert (
        api.post(positions, {"symbol": "AAPL", "quantity": "10", "average_cost": "150"}, format="json").status_code
        == 201
    )
    (opening,) = Transaction.objects.filter(portfolio=main)
    assert (opening.type, opening.quantity, opening.price, opening.fee) == ("buy", 10, 150, 0)
    api.post(url(main), {"type": "sell", "symbol": "AAPL", "quantity": "2", "price": "160"}, format="json")
    changed = api.patch(f"{positions}AAPL/", {"quantity": "4"}, format="json")
    assert changed.status_code == 200
    (replaced,) = Transaction.objects.filter(portfolio=main)
    assert (replaced.quantity, replaced.price, replaced.executed_at) == (4, Decimal(150), opening.executed_at)
    assert changed.json()["realized_gain"] == 0.0
    assert api.delete(f"{positions}AAPL/").status_code == 204
    assert not Transaction.objects.filter(portfolio=main).exists()
    assert not Position.objects.filter(portfolio=main).exists()
