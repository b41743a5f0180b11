"""Password-guessing throttle for every login surface (docs/operations.md, "Login throttling").

More than LOGIN_THROTTLE_USERNAME_FAILURES failed logins for one username within
LOGIN_THROTTLE_WINDOW_SECONDS, or more than LOGIN_THROTTLE_ADDRESS_FAILURES from one
address, and further attempts for that username (or from that address) are refused with 429
and `Retry-After` before the password is even checked, until enough of those failures have
left the window. The counts are sorted sets in Redis, so every web process shares them.

Exact under concurrency: an attempt takes its place in both sets atomically *before* the
password is checked (one Lua script checks the limits and adds it), and gives the place back
only when it turned out not to be a failure. A burst of parallel guesses therefore gets no
more than the limit through, where a check-then-count scheme lets the whole burst in.

A failure is what Django reports through `user_login_failed` while the guarded view runs:
the token endpoint, `/accounts/login/` and the admin login all authenticate through
`django.contrib.auth.authenticate`.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import math
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render

from backend.core.redis import redis_client

logger = logging.getLogger(__name__)

PREFIX = "tf:login:"

# KEYS: the username's set, the address's set. ARGV: window (ms), username limit, address
# limit, the attempt's id. Times come from Redis itself, so web processes on hosts with
# drifting clocks agree. Returns {1, 0, 0} (admitted, the attempt added to both sets) or
# {0, wait_ms, i}: refused, set i (1 username, 2 address) is full for wait_ms more.
_BEGIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limits = {tonumber(ARGV[2]), tonumber(ARGV[3])}
local wait, which = 0, 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local n = redis.call('ZCARD', key)
  if n >= limits[i] then
    -- one more attempt is allowed once the (n - limit + 1) oldest failures left the window
    local entry = redis.call('ZRANGE', key, n - limits[i], n - limits[i], 'WITHSCORES')
    local left = tonumber(entry[2]) + window - now
    if left > wait then wait, which = left, i end
  end
end
if which > 0 then return {0, math.max(wait, 1), which} end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, window)
end
return {1, 0, 0}
"""


@dataclass(frozen=True)
class Refusal:
    """A login attempt refused before its password was checked."""

    retry_after: int  # seconds until one more attempt is allowed
    scope: str  # "username" or "address"


@dataclass
class Attempt:
    attempt_id: str
    keys: tuple[str, str]
    username: str
    address: str
    failed: bool = False


_current: ContextVar[Attempt | None] = ContextVar("login_attempt", default=None)


def username_key(username: str) -> str:
    """Case and compatibility variants of a name count as one (a case-insensitive database
    collation would log them into the same account). Hashed: any length, any character."""
    folded = unicodedata.normalize("NFKC", username[:300].strip()).casefold()
    return f"{PREFIX}user:{hashlib.sha256(folded.encode()).hexdigest()[:32]}"


def client_address(request: HttpRequest) -> str:
    """REMOTE_ADDR (behind the proxy, Daphne's --proxy-headers sets it from X-Forwarded-For;
    the header itself is never read here, a client could forge it). An IPv6 client is counted
    by its /64: one host usually holds a whole /64."""
    raw = str(request.META.get("REMOTE_ADDR") or "")
    try:
        ip = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64] or "unknown"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def address_key(address: str) -> str:
    return f"{PREFIX}addr:{address}"


class LoginThrottle:
    def __init__(self, client: redis.Redis | None = None) -> None:
        self.redis = client or redis_client()
        self._begin = self.redis.register_script(_BEGIN)

    @property
    def window(self) -> int:
        return int(settings.LOGIN_THROTTLE_WINDOW_SECONDS)

    def begin(self, username: str, address: str) -> Attempt | Refusal:
        keys = (username_key(username), address_key(address))
        attempt = Attempt(uuid.uuid4().hex, keys, username, address)
        limits = (max(1, settings.LOGIN_THROTTLE_USERNAME_FAILURES), max(1, settings.LOGIN_THROTTLE_ADDRESS_FAILURES))
        admitted, wait_ms, which = self._begin(keys=list(keys), args=[self.window * 1000, *limits, attempt.attempt_id])
        if int(admitted):
            return attempt
        wait = max(1, math.ceil(int(wait_ms) / 1000))
        return Refusal(retry_after=wait, scope="username" if int(which) == 1 else "address")

    def end(self, attempt: Attempt) -> None:
        """A failure keeps its place in both sets; anything else gives it back."""
        if not attempt.failed:
            pipe = self.redis.pipeline(transaction=False)
            for key in attempt.keys:
                pipe.zrem(key, attempt.attempt_id)
            pipe.execute()
            return
        pipe = self.redis.pipeline(transaction=False)
        for key in attempt.keys:
            pipe.zcard(key)
        user_failures, address_failures = pipe.execute()
        # The failure that fills a set starts its lockout: logged once per lockout.
        if int(user_failures) == settings.LOGIN_THROTTLE_USERNAME_FAILURES:
            logger.warning(
                "login throttle: username %r locked out after %d failed logins within %d s (last from %s)",
                attempt.username[:150],
                int(user_failures),
                self.window,
                attempt.address,
            )
        if int(address_failures) == settings.LOGIN_THROTTLE_ADDRESS_FAILURES:
            logger.warning(
                "login throttle: address %s locked out after %d failed logins within %d s",
                attempt.address,
                int(address_failures),
                self.window,
            )

    def reset(self, *, username: str | None = None, address: str | None = None) -> None:
        """Forget the failures of a username or an address (an operator unlocking it)."""
        keys = [username_key(username)] if username is not None else []
        keys += [address_key(address)] if address is not None else []
        if keys:
            self.redis.delete(*keys)


@functools.cache
def login_throttle() -> LoginThrottle:
    return LoginThrottle()


@contextmanager
def login_attempt(request: HttpRequest, username: object) -> Iterator[Refusal | None]:
    """Guards one login attempt: yields a Refusal (answer 429, do not authenticate) or None
    (go on; a `user_login_failed` meanwhile makes it a counted failure). Without a username
    nothing can be guessed, so nothing is counted. When Redis does not answer, logins go on
    unthrottled (logged): the throttle must not lock everyone out."""
    if isinstance(username, int | float) and not isinstance(username, bool):
        username = str(username)  # DRF's CharField logs a JSON number in as its text
    if not isinstance(username, str) or not username.strip() or not settings.LOGIN_THROTTLE_ENABLED:
        yield None
        return
    throttle = login_throttle()
    address = client_address(request)
    try:
        verdict = throttle.begin(username, address)
    except redis.RedisError:
        logger.warning("login throttle: Redis unavailable; this login is not throttled", exc_info=True)
        yield None
        return
    if isinstance(verdict, Refusal):
        yield verdict
        return
    token = _current.set(verdict)
    try:
        yield None
    finally:
        _current.reset(token)
        try:
            throttle.end(verdict)
        except redis.RedisError:
            logger.warning("login throttle: Redis unavailable; attempt not settled", exc_info=True)


@receiver(user_login_failed, dispatch_uid="tickerflow-login-throttle")
def _login_failed(sender: object, credentials: dict[str, Any], request: object = None, **kwargs: Any) -> None:
    attempt = _current.get()
    if attempt is not None:
        attempt.failed = True


def retry_after_text(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def login_throttled(
    view: Callable[..., HttpResponseBase], *, template: str | None = None
) -> Callable[..., HttpResponseBase]:
    """Wraps a Django login view (form field `username`): a POST over the limits is answered
    429 with `Retry-After`, rendered with `template` when given (context: `throttled`, the
    wait in words, and `retry_after` in seconds), plain text otherwise."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        with login_attempt(request, request.POST.get("username")) as refusal:
            if refusal is None:
                return view(request, *args, **kwargs)
        assert refusal is not None
        message = f"Too many failed login attempts. Try again in {retry_after_text(refusal.retry_after)}."
        if template is not None:
            context = {"throttled": message, "retry_after": refusal.retry_after, "next": request.POST.get("next", "")}
            response = render(request, template, context, status=429)
        else:
            response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(refusal.retry_after)
        return response

    return guarded
