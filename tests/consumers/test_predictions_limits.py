"""/ws/stock_predictions/ lives under the same hub limits as /ws/realtime/: one per-user
connection count across both endpoints and every process, the idle close (4408), and the
credential re-check (4401 revoked token, 4403 deactivated user)."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from backend.realtime.registry import ConnectionManager
from tests.consumers.conftest import close_code, communicator, connected, run

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/ws/stock_predictions/"


async def _accepted_then_closed(comm) -> int | None:
    ok, _ = await comm.connect(timeout=5)
    assert ok
    return await close_code(comm)


async def _open(comm) -> None:
    ok, _ = await comm.connect(timeout=5)
    assert ok
    # Admitted: a ping is answered (a refused socket would be closing instead).
    await comm.send_to(text_data=json.dumps({"type": "ping"}))
    assert json.loads(await comm.receive_from(timeout=3)) == {"type": "pong"}


def test_prediction_connections_count_toward_the_per_user_limit(settings, token):
    settings.WEBSOCKET_MAX_CONNECTIONS_PER_USER = 2

    async def scenario():
        first, second = communicator(PATH, token=token), communicator(PATH, token=token)
        await _open(first)
        await _open(second)
        third = await _accepted_then_closed(communicator(PATH, token=token))
        realtime = await _accepted_then_closed(communicator(token=token))
        await first.disconnect()
        again = communicator(token=token)  # the freed slot serves either endpoint
        await connected(again)
        fourth = await _accepted_then_closed(communicator(PATH, token=token))
        await second.disconnect()
        await again.disconnect()
        return third, realtime, fourth

    assert run(scenario) == (4429, 4429, 4429)


def test_a_prediction_connection_is_in_the_registry_while_open(token, user):
    async def scenario():
        comm = communicator(PATH, token=token)
        await _open(comm)
        during = await sync_to_async(ConnectionManager().get_user_connections)(user)
        await comm.disconnect()
        after = await sync_to_async(ConnectionManager().get_user_connections)(user)
        return during, after

    during, after = run(scenario)
    assert len(during) == 1
    assert during[0]["assets"] == []
    assert during[0]["auth"] == "token"
    assert after == []


def test_an_idle_prediction_connection_closes_with_4408(settings, token):
    settings.WEBSOCKET_TIMEOUT = 1

    async def scenario():
        comm = communicator(PATH, token=token)
        ok, _ = await comm.connect(timeout=5)
        assert ok
        return await close_code(comm, wait=4)

    assert run(scenario) == 4408


def test_pings_keep_a_prediction_connection_open(settings, token):
    settings.WEBSOCKET_TIMEOUT = 1

    async def scenario():
        comm = communicator(PATH, token=token)
        await _open(comm)
        for _ in range(5):
            await comm.send_to(text_data=json.dumps({"type": "ping"}))
            assert json.loads(await comm.receive_from(timeout=3)) == {"type": "pong"}
            assert await comm.receive_nothing(timeout=0.4)
        await comm.disconnect()

    run(scenario)


def test_a_token_revoked_through_the_api_closes_a_prediction_connection_with_4401(settings, token):
    settings.WEBSOCKET_AUTH_RECHECK_SECONDS = 1

    def revoke() -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return client.delete("/api/auth/tokens/").status_code

    async def scenario():
        comm = communicator(PATH, token=token)
        await _open(comm)
        assert await comm.receive_nothing(timeout=1.5)  # still valid after a re-check
        assert await sync_to_async(revoke)() == 204
        return await close_code(comm, wait=4)

    assert run(scenario) == 4401
    assert not Token.objects.filter(key=token).exists()


def test_a_deactivated_user_is_closed_with_4403(settings, user, token):
    settings.WEBSOCKET_AUTH_RECHECK_SECONDS = 1

    async def scenario():
        comm = communicator(PATH, token=token)
        await _open(comm)
        await sync_to_async(User.objects.filter(pk=user.pk).update)(is_active=False)
        return await close_code(comm, wait=4)

    assert run(scenario) == 4403
