"""Logs of a login, a token request and a WebSocket session hold no secret, even at DEBUG."""

from __future__ import annotations

import asyncio
import json

import pytest
import requests
import websockets
from django.contrib.auth.models import User

from tests.live import daphne

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
PASSWORD = "Very-Secret-Pass-8231"


async def websocket_session(url: str, headers: dict[str, str]) -> dict:
    async with websockets.connect(url, additional_headers=headers, open_timeout=10) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        await ws.send(json.dumps({"type": "ping", "data": {}}))
        await asyncio.wait_for(ws.recv(), timeout=10)
        return first


def test_login_token_and_websocket_session_leave_no_secret_in_the_logs():
    User.objects.create_user("logcheck", password=PASSWORD)
    with daphne(LOG_LEVEL="DEBUG", LOG_FORMAT="json") as (proc, port):
        base = f"http://127.0.0.1:{port}"
        session = requests.Session()
        session.get(f"{base}/accounts/login/", timeout=10)
        csrf = session.cookies["csrftoken"]
        response = session.post(
            f"{base}/accounts/login/",
            data={"username": "logcheck", "password": PASSWORD, "csrfmiddlewaretoken": csrf, "next": "/"},
            headers={"Referer": f"{base}/accounts/login/"},
            timeout=10,
        )
        assert response.status_code == 200
        sessionid = session.cookies["sessionid"]
        token = requests.post(
            f"{base}/api/auth/token/", json={"username": "logcheck", "password": PASSWORD}, timeout=10
        ).json()["token"]
        url = f"ws://127.0.0.1:{port}/ws/realtime/"
        first = asyncio.run(websocket_session(url, {"Authorization": f"Token {token}"}))
        assert first["type"] == "connection"
        cookie = f"sessionid={sessionid}; csrftoken={session.cookies['csrftoken']}"
        asyncio.run(websocket_session(url, {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}))
        log = proc.log()
    assert log.strip(), "the web process logged nothing at DEBUG: the check would prove nothing"
    for line in log.splitlines():
        if line.startswith("{"):
            json.loads(line)  # production format: one JSON object per line
    for secret in (PASSWORD, token, sessionid, csrf):
        assert secret not in log
