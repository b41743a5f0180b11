"""Security cross-checks against a real Daphne: cross-site WebSocket hijacking, credentials
revoked mid-connection, other users' portfolios (WebSocket and REST, by id guessing), staff-only
and CSRF-protected APIs, and no secret in the logs of the processes started here."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import pytest
import websockets
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token

from backend.portfolios.models import Portfolio
from tests.live import daphne

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

RECHECK = 1


async def _close_code(ws: websockets.ClientConnection, wait: float = 10) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout=wait)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


def _session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def test_websocket_refuses_cookie_without_origin_and_drops_revoked_tokens_and_deactivated_users_within_the_recheck():
    alice = User.objects.create_user("alice", password="pw-alice-secret-1")
    bob = User.objects.create_user("bob", password="pw-bob-secret-2")
    alice_token = Token.objects.create(user=alice)
    bob_token = Token.objects.create(user=bob)
    cookie = _session_cookie(alice)

    async def scenario(port: int) -> dict[str, float | int | None]:
        url = f"ws://127.0.0.1:{port}/ws/realtime/"
        figures: dict[str, float | int | None] = {}
        async with websockets.connect(url, additional_headers={"Cookie": cookie}) as ws:  # no Origin: not a browser
            figures["cookie_without_origin"] = await _close_code(ws)
        revoked = await websockets.connect(url, additional_headers={"Authorization": f"Token {alice_token.key}"})
        deactivated = await websockets.connect(url, additional_headers={"Authorization": f"Token {bob_token.key}"})
        for ws in (revoked, deactivated):
            assert json.loads(await ws.recv())["type"] == "connection"
        started = time.monotonic()
        await asyncio.to_thread(lambda: Token.objects.filter(pk=alice_token.pk).delete())
        await asyncio.to_thread(lambda: User.objects.filter(pk=bob.pk).update(is_active=False))
        figures["revoked_code"] = await _close_code(revoked)
        figures["revoked_after"] = time.monotonic() - started
        figures["deactivated_code"] = await _close_code(deactivated)
        figures["deactivated_after"] = time.monotonic() - started
        return figures

    with daphne(WEBSOCKET_AUTH_RECHECK_SECONDS=str(RECHECK)) as (web, port):
        figures = asyncio.run(scenario(port))
        log = web.log()
    print(f"\nsecurity: {figures}")
    assert figures["cookie_without_origin"] == 4401
    assert figures["revoked_code"] == 4401
    assert figures["deactivated_code"] in (4401, 4403)  # the consumer says 4403: known user, no longer allowed
    assert float(figures["revoked_after"] or 0) < RECHECK + 2
    assert float(figures["deactivated_after"] or 0) < RECHECK + 2
    _assert_no_secret(log, [alice_token.key, bob_token.key, cookie.split("=", 1)[1], "pw-alice-secret-1"])


def test_another_users_portfolio_is_invisible_over_websocket_and_rest_including_by_id_guessing():
    alice = User.objects.create_user("alice")
    bob = User.objects.create_user("bob")
    bobs = Portfolio.objects.create(owner=bob, name="Bob's secret")
    token = Token.objects.create(user=alice).key
    missing_id = bobs.pk + 1000

    async def scenario(port: int) -> list[dict]:
        url = f"ws://127.0.0.1:{port}/ws/realtime/"
        answers = []
        async with websockets.connect(url, additional_headers={"Authorization": f"Token {token}"}) as ws:
            await ws.recv()
            # Guessed ids around the real one (the message rate limit allows about 60).
            for pid in (bobs.pk, missing_id, *range(max(1, bobs.pk - 20), bobs.pk + 3)):
                await ws.send(json.dumps({"type": "subscribe_portfolio", "data": {"portfolio_id": pid}}))
                answers.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=10)))
        return answers

    with daphne() as (_, port):
        answers = asyncio.run(scenario(port))
    assert all(a["type"] == "error" and a["data"]["code"] == "not_found" for a in answers), answers
    assert answers[0]["data"]["message"].replace(str(bobs.pk), "N") == answers[1]["data"]["message"].replace(
        str(missing_id), "N"
    ), "a foreign portfolio and a missing one get the same answer"
    assert "Bob's secret" not in json.dumps(answers)

    api = Client(HTTP_AUTHORIZATION=f"Token {token}")
    for pid in (bobs.pk, missing_id):
        assert api.get(f"/api/portfolios/{pid}/").status_code == 404
        assert api.patch(f"/api/portfolios/{pid}/", {"name": "x"}, content_type="application/json").status_code == 404
        assert api.delete(f"/api/portfolios/{pid}/").status_code == 404
        position = {"symbol": "AAPL", "quantity": "1", "average_cost": "1"}
        assert (
            api.post(f"/api/portfolios/{pid}/positions/", position, content_type="application/json").status_code == 404
        )
    listing = api.get("/api/portfolios/")
    assert "Bob's secret" not in listing.content.decode()
    assert Portfolio.objects.get(pk=bobs.pk).name == "Bob's secret"
    assert not bobs.positions.exists()
    assert Decimal(0) == sum((p.quantity for p in bobs.positions.all()), Decimal(0))


def test_force_refresh_and_staff_apis_are_staff_only_and_session_clients_need_csrf():
    user = User.objects.create_user("pleb")
    staff = User.objects.create_user("ops", is_staff=True)
    token = Token.objects.create(user=user).key
    for path in ("/api/realtime/status/", "/api/realtime/connections/"):
        assert Client(HTTP_AUTHORIZATION=f"Token {token}").get(path).status_code == 403
        assert Client().get(path).status_code in (401, 403)
    body = {"symbols": ["AAPL"]}
    as_user = Client(HTTP_AUTHORIZATION=f"Token {token}")
    assert as_user.post("/api/prices/refresh/", body, content_type="application/json").status_code == 403
    session = Client(enforce_csrf_checks=True)
    session.force_login(staff)
    assert session.post("/api/prices/refresh/", body, content_type="application/json").status_code == 403  # no CSRF
    session.get("/api/realtime/status/")  # any page that sets the CSRF cookie
    csrf = session.cookies.get("csrftoken")
    if csrf is None:
        session.get("/")
        csrf = session.cookies["csrftoken"]
    answer = session.post("/api/prices/refresh/", body, content_type="application/json", HTTP_X_CSRFTOKEN=csrf.value)
    assert answer.status_code == 202, answer.content


def _assert_no_secret(log: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in log, f"a secret ({secret[:4]}...) is in a process log"
