from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from backend.market.models import RefreshRun
from tests.tasks.prices_helpers import hold

pytestmark = pytest.mark.django_db
URL = "/api/prices/refresh/"


@pytest.fixture
def staff() -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create_user("ops", is_staff=True))
    return client


def test_staff_forced_refresh_of_named_symbols_answers_202_with_task_ids(staff, redis_client):
    redis_client.flushdb()
    response = staff.post(URL, {"symbols": ["aapl", "MSFT"]}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["symbols"] == ["AAPL", "MSFT"]
    assert len(body["task_ids"]) == 1
    assert RefreshRun.objects.get(pk=body["run_id"]).kind == RefreshRun.Kind.FORCED


def test_an_empty_list_refreshes_every_tracked_symbol(staff, redis_client):
    redis_client.flushdb()
    hold(["AAPL", "MSFT", "TSLA"])
    response = staff.post(URL, {"symbols": []}, format="json")
    assert response.status_code == 202
    assert response.json()["symbols"] == ["AAPL", "MSFT", "TSLA"]


def test_a_malformed_symbol_is_a_400_and_nothing_is_dispatched(staff):
    response = staff.post(URL, {"symbols": ["AAPL", "bad symbol!"]}, format="json")
    assert response.status_code == 400
    assert "symbols" in response.json()
    assert not RefreshRun.objects.exists()


def test_a_non_staff_user_is_refused():
    client = APIClient()
    client.force_authenticate(User.objects.create_user("plain"))
    assert client.post(URL, {"symbols": ["AAPL"]}, format="json").status_code == 403
    assert APIClient().post(URL, {"symbols": ["AAPL"]}, format="json").status_code in (401, 403)
