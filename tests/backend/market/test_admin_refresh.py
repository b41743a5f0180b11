from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from backend.market.models import Asset, RefreshRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@override_settings(FLOWER_URL="http://flower.example/")
def test_force_price_refresh_action_queues_the_selected_assets_and_links_to_flower(
    admin_client_logged_in, redis_client
):
    redis_client.flushdb()
    a = Asset.objects.create(symbol="AAPL")
    Asset.objects.create(symbol="MSFT")
    response = admin_client_logged_in.post(
        "/admin/market/asset/", {"action": "force_price_refresh", "_selected_action": [a.pk]}, follow=True
    )
    page = response.content.decode()
    run = RefreshRun.objects.get()
    assert run.kind == RefreshRun.Kind.FORCED
    assert run.symbols_requested == 1
    assert f"Refresh run {run.pk} queued 1 symbols in 1 tasks" in page
    assert 'href="http://flower.example/"' in page


def test_the_asset_list_has_a_refresh_all_button_that_queues_every_tracked_symbol(admin_client_logged_in, redis_client):
    redis_client.flushdb()
    from tests.tasks.prices_helpers import hold

    hold(["AAPL", "MSFT"])
    page = admin_client_logged_in.get("/admin/market/asset/").content.decode()
    assert "Refresh all now" in page
    response = admin_client_logged_in.post("/admin/market/asset/refresh-all/", follow=True)
    assert response.status_code == 200
    assert RefreshRun.objects.get().symbols_requested == 2
    assert admin_client_logged_in.get("/admin/market/asset/refresh-all/").status_code == 405
