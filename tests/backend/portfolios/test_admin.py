from __future__ import annotations

import pytest
from celery import Celery
from django.contrib.auth.models import User
from django.test import Client

from backend.portfolios.services import revaluation

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(db) -> Client:
    User.objects.create_superuser("root", password="pw-root-123")
    client = Client()
    client.login(username="root", password="pw-root-123")
    return client


def test_recalculate_now_queues_a_revaluation_task_per_selected_portfolio(
    admin_client_, three_portfolios, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        Celery, "send_task", lambda self, name, args=None, kwargs=None, **kw: sent.append((name, kwargs))
    )
    gains, large = three_portfolios["gains"], three_portfolios["large"]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_.post(
            "/admin/portfolios/portfolio/",
            {"action": "recalculate_now", "_selected_action": [gains.pk, large.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert "Revaluation of 2 portfolio(s) queued" in response.content.decode()
    assert sorted(sent, key=lambda s: s[1]["portfolio_id"]) == [
        ("tasks.portfolios.revalue_portfolio", {"portfolio_id": gains.pk}),
        ("tasks.portfolios.revalue_portfolio", {"portfolio_id": large.pk}),
    ]


def test_the_list_shows_figures_in_cents(admin_client_, three_portfolios):
    revaluation.portfolios_revalue(portfolio_ids=[three_portfolios["large"].pk])
    page = admin_client_.get("/admin/portfolios/portfolio/").content.decode()
    assert "919,311,716.39" in page
    assert "53.14 %" in page


def test_transactions_added_in_the_admin_go_through_the_ledger(admin_client_, ann, market):
    from backend.market.models import Asset
    from backend.portfolios.models import Portfolio, Position, Transaction

    portfolio = Portfolio.objects.create(owner=ann, name="Admin's")
    page = admin_client_.get(f"/admin/portfolios/portfolio/{portfolio.pk}/change/")
    assert page.status_code == 200
    assert "Transactions" in page.content.decode()
    form = {
        "owner": ann.pk,
        "name": "Admin's",
        "base_currency": "USD",
        "transactions-TOTAL_FORMS": 1,
        "transactions-INITIAL_FORMS": 0,
        "transactions-MIN_NUM_FORMS": 0,
        "transactions-MAX_NUM_FORMS": 1000,
        "transactions-0-type": "buy",
        "transactions-0-asset": Asset.objects.get(symbol="AAPL").pk,
        "transactions-0-quantity": "2",
        "transactions-0-price": "150",
        "transactions-0-fee": "1",
        "transactions-0-ratio": "",
        "transactions-0-currency": "",
        "transactions-0-fx_rate": "",
        "transactions-0-executed_at_0": "2026-03-02",
        "transactions-0-executed_at_1": "15:00:00",
        "positions-TOTAL_FORMS": 0,
        "positions-INITIAL_FORMS": 0,
        "positions-MIN_NUM_FORMS": 0,
        "positions-MAX_NUM_FORMS": 1000,
    }
    response = admin_client_.post(f"/admin/portfolios/portfolio/{portfolio.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    (row,) = Transaction.objects.filter(portfolio=portfolio)
    assert (row.currency, row.fx_rate) == ("USD", 1)  # the asset's currency, the latest rate
    position = Position.objects.get(portfolio=portfolio)
    assert (position.quantity, position.cost_basis) == (2, 301)
    assert admin_client_.get("/admin/portfolios/position/add/").status_code == 403  # derived: read-only
    assert admin_client_.get(f"/admin/portfolios/portfolio/{portfolio.pk}/change/").status_code == 200
