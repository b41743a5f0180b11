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
