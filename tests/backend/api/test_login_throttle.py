"""Password guessing is throttled on the token endpoint, /accounts/login/ and the admin login:
more than 10 failures for a username within 15 minutes, or 100 from an address -> 429 with
Retry-After, counted in Redis, exact under a parallel burst, never slowing other users."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from redis.backoff import NoBackoff
from redis.retry import Retry
from rest_framework.test import APIClient

from backend.api import logins
from backend.api.logins import LoginThrottle, Refusal, client_address, username_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clean_throttle():
    client = redis.Redis.from_url(django_settings.REDIS_URL)

    def wipe():
        for key in client.scan_iter(f"{logins.PREFIX}*"):
            client.delete(key)

    wipe()
    yield client
    wipe()
    client.close()


@pytest.fixture
def carol() -> User:
    return User.objects.create_user("carol", password="pw-carol-123", is_staff=True, is_superuser=True)


@pytest.fixture
def dave() -> User:
    return User.objects.create_user("dave", password="pw-dave-123")


def token_post(username: object, password: str, address: str = "10.0.0.1"):
    return APIClient().post(
        "/api/auth/token/", {"username": username, "password": password}, format="json", REMOTE_ADDR=address
    )


def form_post(path: str, username: str, password: str, address: str = "10.0.0.1"):
    return Client().post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_the_eleventh_attempt_for_a_username_is_429_even_with_the_right_password(carol, dave):
    for _ in range(10):
        assert token_post("carol", "wrong").status_code == 400
    refused = token_post("carol", "pw-carol-123")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 900
    assert "Too many failed login attempts" in refused.json()["detail"]
    # Other users are not slowed, from the same address or any other.
    assert token_post("dave", "pw-dave-123").status_code == 200
    assert token_post("dave", "pw-dave-123", address="10.9.9.9").status_code == 200
    # The lockout is the username's, from any address.
    assert token_post("carol", "pw-carol-123", address="10.9.9.9").status_code == 429


def test_the_three_login_surfaces_share_one_count_and_all_answer_429(carol):
    for _ in range(4):
        assert token_post("carol", "wrong").status_code == 400
    for _ in range(3):
        page = form_post("/accounts/login/", "carol", "wrong")
        assert page.status_code == 200
        assert "didn't match" in page.content.decode()
    for _ in range(3):
        assert form_post("/admin/login/", "carol", "wrong").status_code == 200

    accounts = form_post("/accounts/login/", "carol", "pw-carol-123")
    assert accounts.status_code == 429
    assert int(accounts["Retry-After"]) > 0
    assert "Too many failed login attempts" in accounts.content.decode()
    assert 'name="username"' in accounts.content.decode()  # the login page, with the message

    admin = form_post("/admin/login/", "carol", "pw-carol-123")
    assert admin.status_code == 429
    assert int(admin["Retry-After"]) > 0
    assert token_post("carol", "pw-carol-123").status_code == 429
    assert Client().get("/accounts/login/").status_code == 200  # showing the page is never throttled


def test_a_successful_login_is_not_counted_as_a_failure(carol):
    for _ in range(9):
        assert token_post("carol", "wrong").status_code == 400
    for _ in range(5):
        assert token_post("carol", "pw-carol-123").status_code == 200
        response = form_post("/accounts/login/", "carol", "pw-carol-123")
        assert response.status_code == 302
    assert token_post("carol", "wrong").status_code == 400  # the 10th failure is still answered
    assert token_post("carol", "pw-carol-123").status_code == 429


def test_an_address_over_its_limit_is_refused_for_every_username(settings, carol, dave):
    settings.LOGIN_THROTTLE_ADDRESS_FAILURES = 5
    for i in range(5):
        assert token_post(f"nobody{i}", "guess", address="10.6.6.6").status_code == 400
    refused = token_post("dave", "pw-dave-123", address="10.6.6.6")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert form_post("/accounts/login/", "dave", "pw-dave-123", address="10.6.6.6").status_code == 429
    assert token_post("dave", "pw-dave-123", address="10.6.6.7").status_code == 200


def test_the_lockout_ends_when_the_failures_leave_the_window(settings, carol):
    settings.LOGIN_THROTTLE_WINDOW_SECONDS = 1
    settings.LOGIN_THROTTLE_USERNAME_FAILURES = 2
    assert token_post("carol", "wrong").status_code == 400
    assert token_post("carol", "wrong").status_code == 400
    refused = token_post("carol", "pw-carol-123")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "1"
    time.sleep(1.1)
    assert token_post("carol", "pw-carol-123").status_code == 200


def test_the_retry_after_counts_down_to_when_the_oldest_counted_failure_leaves():
    throttle = LoginThrottle()
    window = django_settings.LOGIN_THROTTLE_WINDOW_SECONDS
    for _ in range(10):
        attempt = throttle.begin("erin", "10.0.0.2")
        assert not isinstance(attempt, Refusal)
        attempt.failed = True
        throttle.end(attempt)
    refusal = throttle.begin("erin", "10.0.0.3")
    assert isinstance(refusal, Refusal)
    assert refusal.scope == "username"
    assert window - 5 <= refusal.retry_after <= window


def test_a_parallel_burst_gets_no_more_guesses_than_the_limit():
    """Attempts take their place before the password is checked: 40 guesses at once, and
    still only 10 are let through to be checked."""
    throttle = LoginThrottle()
    with ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = list(pool.map(lambda _: throttle.begin("frank", "10.0.0.4"), range(40)))
    admitted = [v for v in verdicts if not isinstance(v, Refusal)]
    assert len(admitted) == 10
    assert all(isinstance(v, Refusal) and v.scope == "username" for v in verdicts if v not in admitted)


def test_each_lockout_is_logged_once(caplog, carol):
    with caplog.at_level(logging.WARNING, logger="backend.api.logins"):
        for _ in range(10):
            token_post("carol", "wrong")
        for _ in range(3):
            token_post("carol", "wrong")  # refused: no new lockout
    lockouts = [r for r in caplog.records if "locked out" in r.getMessage()]
    assert len(lockouts) == 1
    assert "'carol'" in lockouts[0].getMessage()


def test_logins_go_on_unthrottled_when_redis_does_not_answer(monkeypatch, caplog, carol):
    dead = LoginThrottle(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)))
    monkeypatch.setattr(logins, "login_throttle", lambda: dead)
    with caplog.at_level(logging.WARNING, logger="backend.api.logins"):
        assert token_post("carol", "pw-carol-123").status_code == 200
    assert "not throttled" in caplog.text


def test_usernames_are_counted_case_and_space_insensitively_and_ipv6_by_its_64():
    assert username_key("Carol") == username_key(" carol ") == username_key("CAROL")
    assert username_key("carol") != username_key("carol2")

    def req(addr: str):
        return RequestFactory().post("/api/auth/token/", REMOTE_ADDR=addr)

    assert client_address(req("2001:db8:1:2:aaaa::1")) == client_address(req("2001:db8:1:2:bbbb::9"))
    assert client_address(req("2001:db8:1:2::1")) == "2001:db8:1:2::/64"
    assert client_address(req("192.0.2.7")) == "192.0.2.7"


def test_a_numeric_json_username_is_counted_too(settings):
    settings.LOGIN_THROTTLE_USERNAME_FAILURES = 2
    User.objects.create_user("12345", password="pw-num-123")
    assert token_post(12345, "wrong").status_code == 400
    assert token_post("12345", "wrong").status_code == 400
    assert token_post(12345, "pw-num-123").status_code == 429
