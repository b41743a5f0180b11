from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.portfolios.models import Portfolio
from backend.portfolios.services import revaluation

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(db) -> Client:
    User.objects.create_superuser("root", password="pw-root-123")
    client = Client()
    client.login(username="root", password="pw-root-123")
    return client


def test_recalculate_now_values_the_selected_portfolios_and_publishes(
    admin_client_, three_portfolios, monkeypatch, django_capture_on_commit_callbacks
):
    published: list[list[dict]] = []

    def record(events) -> int:
        published.append(list(events))
        return len(published[-1])

    monkeypatch.setattr(revaluation, "publish_batch", record)
    gains, large = three_portfolios["gains"], three_portfolios["large"]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_.post(
            "/admin/portfolios/portfolio/",
            {"action": "recalculate_now", "_selected_action": [gains.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert "Recalculated 1 portfolio(s): 1 changed" in response.content.decode()
    gains.refresh_from_db()
    assert gains.total_value is not None
    assert gains.total_value.quantize(Decimal("0.01")) == Decimal("36670.06")
    assert Portfolio.objects.get(pk=large.pk).valued_at is None
    assert [e["type"] for e in published[0]] == ["portfolio_update"]


def test_the_list_shows_figures_in_cents(admin_client_, three_portfolios):
    revaluation.portfolios_revalue(portfolio_ids=[three_portfolios["large"].pk], publish=False)
    page = admin_client_.get("/admin/portfolios/portfolio/").content.decode()
    assert "919,311,716.39" in page
    assert "53.14 %" in page
