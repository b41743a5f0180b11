"""GET|DELETE /api/auth/tokens/: a user lists and revokes their own API tokens; a revoked token
stops working over REST at once and over WebSocket at the next credential re-check."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.contrib.messages.storage.cookie import CookieStorage
from django.test import Client, RequestFactory
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from backend.market.admin import AssetAdmin
from backend.market.models import Asset, RefreshRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def gina() -> User:
    return User.objects.create_user("gina", password="pw-gina-123")


@pytest.fixture
def gina_token(gina) -> Token:
    return Token.objects.create(user=gina)


def with_token(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_the_list_shows_only_your_token_by_its_prefix(gina, gina_token):
    other = Token.objects.create(user=User.objects.create_user("hank", password="pw-hank-123"))
    rows = with_token(gina_token.key).get("/api/auth/tokens/").json()
    assert rows == [{"id": gina_token.key[:8], "created": rows[0]["created"], "current": True}]
    assert rows[0]["created"].endswith("Z")
    assert other.key[:8] not in str(rows)

    session = APIClient()
    session.force_login(gina)
    assert session.get("/api/auth/tokens/").json()[0]["current"] is False


def test_revoking_the_current_token_stops_it_at_once(gina_token):
    client = with_token(gina_token.key)
    assert client.get("/api/portfolios/").status_code == 200
    assert client.delete("/api/auth/tokens/").status_code == 204
    # DRF answers 403 rather than 401 because the session authenticator comes first.
    refused = client.get("/api/portfolios/")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "Invalid token."}
    assert not Token.objects.filter(key=gina_token.key).exists()


def test_revoking_by_id_from_a_session_and_getting_a_new_key(gina, gina_token):
    session = APIClient()
    session.force_login(gina)
    missing = session.delete("/api/auth/tokens/")
    assert missing.status_code == 400
    assert "id" in missing.json()
    assert session.delete("/api/auth/tokens/?id=zz").status_code == 400
    unknown = "ffffffff" if not gina_token.key.startswith("ffffffff") else "00000000"
    assert session.delete(f"/api/auth/tokens/?id={unknown}").status_code == 404
    assert Token.objects.filter(user=gina).exists()
    assert session.delete("/api/auth/tokens/", {"id": gina_token.key[:8]}, format="json").status_code == 204
    assert not Token.objects.filter(user=gina).exists()
    assert with_token(gina_token.key).get("/api/auth/tokens/").status_code == 403

    fresh = APIClient().post("/api/auth/token/", {"username": "gina", "password": "pw-gina-123"}, format="json")
    assert fresh.status_code == 200
    assert fresh.json()["token"] != gina_token.key


def test_another_users_token_cannot_be_revoked(gina_token):
    hank = Token.objects.create(user=User.objects.create_user("hank", password="pw-hank-123"))
    answer = with_token(gina_token.key).delete(f"/api/auth/tokens/?id={hank.key[:8]}")
    assert answer.status_code == 404
    assert Token.objects.filter(key=hank.key).exists()


def test_anonymous_callers_get_no_list():
    assert APIClient().get("/api/auth/tokens/").status_code == 403


def test_the_schema_documents_the_token_list_and_revoke():
    schema = APIClient().get("/api/schema/?format=json").json()
    operations = schema["paths"]["/api/auth/tokens/"]
    assert {"get", "delete"} <= set(operations)


def test_force_price_refresh_needs_the_change_permission():
    """A staff user who may only view assets neither sees the admin action nor runs it."""
    viewer = User.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_asset"))
    asset = Asset.objects.create(symbol="AAPL")
    client = Client()
    client.force_login(viewer)
    page = client.get("/admin/market/asset/").content.decode()
    assert "force_price_refresh" not in page
    client.post("/admin/market/asset/", {"action": "force_price_refresh", "_selected_action": [asset.pk]})
    assert not RefreshRun.objects.exists()

    # The action itself refuses too, should anything call it for such a user.
    request = RequestFactory().post("/admin/market/asset/")
    request.user = viewer
    request._messages = CookieStorage(request)  # type: ignore[attr-defined]
    AssetAdmin(Asset, admin.site).force_price_refresh(request, Asset.objects.all())
    assert not RefreshRun.objects.exists()
    assert [str(m) for m in request._messages] == ["You may not refresh prices."]  # type: ignore[attr-defined]
