"""The stack's real parts talk to each other: Daphne, a Celery worker, Redis, the database."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from config.celery import app
from tests.live import celery_worker, daphne

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_runs_a_task_against_the_database_and_returns_its_result():
    with celery_worker():
        result = app.send_task("tasks.health.worker_check", args=["smoke"])
        assert result.get(timeout=30) == {"token": "smoke", "database": True}


async def _first_message(url: str, headers: dict[str, str] | None = None) -> tuple[dict | None, int | None]:
    async with websockets.connect(url, additional_headers=headers, open_timeout=10) as ws:
        try:
            raw = await asyncio.wait_for(ws.recv(), timeout=10)
            return json.loads(raw), None
        except websockets.ConnectionClosed as closed:
            return None, closed.rcvd.code if closed.rcvd else None


def test_daphne_accepts_a_token_websocket_and_closes_an_anonymous_one_with_4401():
    user = User.objects.create_user("smoke", password="pw-smoke-123")
    token = Token.objects.create(user=user)
    with daphne() as (_, port):
        url = f"ws://127.0.0.1:{port}/ws/realtime/"
        message, _ = asyncio.run(_first_message(url, {"Authorization": f"Token {token.key}"}))
        assert message is not None
        assert message["type"] == "connection"
        assert message["data"]["user_id"] == user.pk
        assert message["seq"] == 1
        message, code = asyncio.run(_first_message(url))
        assert message is None
        assert code == 4401
