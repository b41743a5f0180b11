"""Authentication, Origin policy, limits and the close codes of /ws/realtime/ (sent after
accept, so a browser sees them)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token

from consumers.policy import RateLimiter
from tests.consumers.conftest import close_code, communicator, connected, receive, run, send

pytestmark = pytest.mark.django_db(transaction=True)


async def _accepted_then_closed(comm) -> int | None:
    ok, _ = await comm.connect(timeout=5)
    assert ok, "the handshake must be accepted so the client sees the close code"
    return await close_code(comm)


def test_no_login_is_accepted_then_closed_with_4401():
    assert run(lambda: _accepted_then_closed(communicator())) == 4401


def test_a_bad_token_is_4401():
    assert run(lambda: _accepted_then_closed(communicator(token="not-a-token"))) == 4401


def test_session_cookie_with_an_allowed_origin_connects(user, session_cookie):
    async def scenario():
        comm = communicator(cookie=session_cookie, origin="http://127.0.0.1:8000")
        hello = await connected(comm)
        assert hello["data"]["user_id"] == user.pk
        await comm.disconnect()

    run(scenario)


def test_session_cookie_without_origin_is_not_enough(session_cookie):
    assert run(lambda: _accepted_then_closed(communicator(cookie=session_cookie))) == 4401


def test_foreign_origin_is_refused_at_the_handshake_even_with_a_valid_session(session_cookie):
    async def scenario():
        comm = communicator(cookie=session_cookie, origin="https://evil.example")
        ok, _ = await comm.connect(timeout=5)
        return ok

    assert run(scenario) is False


def test_star_in_allowed_hosts_admits_only_the_origin_naming_the_host_itself(settings, session_cookie):
    settings.ALLOWED_HOSTS = ["*"]

    async def attempt(origin):
        comm = communicator(cookie=session_cookie, origin=origin)
        ok, _ = await comm.connect(timeout=5)
        await comm.disconnect()
        return ok

    assert run(lambda: attempt("http://127.0.0.1:8000")) is True
    assert run(lambda: attempt("https://evil.example")) is False


def test_token_without_origin_is_accepted(token):
    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        await comm.disconnect()

    run(scenario)


def test_missing_required_permission_is_4403(settings, user, token):
    settings.WEBSOCKET_REQUIRED_PERMISSION = "auth.view_user"
    assert run(lambda: _accepted_then_closed(communicator(token=token))) == 4403
    user.user_permissions.add(Permission.objects.get(codename="view_user"))

    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        await comm.disconnect()

    run(scenario)


def test_message_over_the_size_limit_closes_with_4413(settings, token):
    settings.WEBSOCKET_MESSAGE_SIZE_LIMIT = 100

    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        await comm.send_to(text_data=json.dumps({"type": "ping", "data": {"pad": "x" * 40}}))
        assert (await receive(comm))["type"] == "pong"  # 77 bytes: within the limit
        await comm.send_to(
            text_data=json.dumps({"type": "ping", "data": {"pad": "é" * 40}})
        )  # 77 characters, 117 bytes
        return await close_code(comm)

    assert run(scenario) == 4413


def test_messages_over_the_rate_close_with_4429(settings, token):
    settings.WEBSOCKET_RATE_LIMIT_MESSAGES_PER_MINUTE = 3

    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        for _ in range(3):
            await send(comm, "ping")
            assert (await receive(comm))["type"] == "pong"
        await send(comm, "ping")
        return await close_code(comm)

    assert run(scenario) == 4429


def test_rate_limiter_counts_a_sliding_minute():
    limiter = RateLimiter(per_minute=2)
    assert limiter.allow(0.0)
    assert limiter.allow(30.0)
    assert not limiter.allow(59.9)
    assert limiter.allow(60.0)  # the first one left the window


def test_connections_over_the_per_user_limit_close_with_4429(settings, token):
    settings.WEBSOCKET_MAX_CONNECTIONS_PER_USER = 2

    async def scenario():
        first, second, third = (communicator(token=token) for _ in range(3))
        await connected(first)
        await connected(second)
        code = await _accepted_then_closed(third)
        await first.disconnect()
        fourth = communicator(token=token)  # a slot is free again
        await connected(fourth)
        await second.disconnect()
        await fourth.disconnect()
        return code

    assert run(scenario) == 4429


def test_idle_connection_closes_with_4408(settings, token):
    settings.WEBSOCKET_TIMEOUT = 1

    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        return await close_code(comm, wait=4)

    assert run(scenario) == 4408


def test_client_messages_keep_a_connection_from_idling_out(settings, token):
    settings.WEBSOCKET_TIMEOUT = 1

    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        for _ in range(5):
            await send(comm, "ping")
            assert (await receive(comm))["type"] == "pong"
            assert await comm.receive_nothing(timeout=0.4)
        await comm.disconnect()

    run(scenario)


def test_revoked_token_closes_a_long_connection_with_4401(settings, user, token):
    settings.WEBSOCKET_AUTH_RECHECK_SECONDS = 1

    async def scenario():
        from asgiref.sync import sync_to_async

        comm = communicator(token=token)
        await connected(comm)
        assert await comm.receive_nothing(timeout=1.5)  # still valid after a re-check
        await sync_to_async(Token.objects.filter(key=token).delete)()
        return await close_code(comm, wait=4)

    assert run(scenario) == 4401


def test_deactivated_user_is_closed_with_4403(settings, user, token):
    settings.WEBSOCKET_AUTH_RECHECK_SECONDS = 1

    async def scenario():
        from asgiref.sync import sync_to_async

        comm = communicator(token=token)
        await connected(comm)
        await sync_to_async(User.objects.filter(pk=user.pk).update)(is_active=False)
        return await close_code(comm, wait=4)

    assert run(scenario) == 4403


def test_logged_out_session_closes_the_connection_with_4401(settings, user, session_cookie):
    settings.WEBSOCKET_AUTH_RECHECK_SECONDS = 1
    from django.contrib.sessions.models import Session

    async def scenario():
        from asgiref.sync import sync_to_async

        comm = communicator(cookie=session_cookie, origin="http://localhost")
        await connected(comm)
        assert await comm.receive_nothing(timeout=1.5)
        await sync_to_async(Session.objects.all().delete)()
        return await close_code(comm, wait=4)

    assert run(scenario) == 4401


def test_credentials_are_rechecked_in_a_few_queries_whatever_the_number_of_connections(
    user, token, session_cookie, django_assert_max_num_queries
):
    from consumers.auth import credentials_check_many

    other = User.objects.create_user("carol", password="pw-carol-123", is_active=False)
    session_key = session_cookie.split("=", 1)[1]
    entries = [(user.pk, "token", token, None)] * 500 + [
        (user.pk, "token", "revoked", None),
        (user.pk, "session", None, session_key),
        (user.pk, "session", None, "gone"),
        (other.pk, "token", token, None),
        (999_999, "token", token, None),
    ]
    with django_assert_max_num_queries(5):
        verdicts = credentials_check_many(entries)
    assert verdicts[:500] == [None] * 500
    assert verdicts[500:] == [4401, None, 4401, 4403, 4401]
