"""Who is on a WebSocket and whether they may stay: the token header beside the session
cookie, the Origin policy, and the periodic re-check of long connections."""

from __future__ import annotations

from importlib import import_module
from typing import Any
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http.request import split_domain_port, validate_host


def _header(headers: list[tuple[bytes, bytes]], wanted: bytes) -> str | None:
    for name, value in headers:
        if name.lower() == wanted:
            return value.decode("latin-1")
    return None


def _token_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    value = _header(headers, b"authorization")
    if value is None:
        return None
    scheme, _, key = value.partition(" ")
    if scheme.lower() == "token" and key.strip():
        return key.strip()
    return None


@database_sync_to_async
def _user_for_token(key: str) -> AbstractBaseUser | None:
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


class TokenAuthMiddleware(BaseMiddleware):
    """Sets scope["user"] from a token header (wins over the session) and records
    scope["auth_method"] = "token" | "session" | None and scope["auth_token"] for the
    consumer's policy and re-checks."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        key = _token_from_headers(scope.get("headers", []))
        if key is not None:
            user = await _user_for_token(key)
            scope["user"] = user or AnonymousUser()
            scope["auth_method"] = "token" if user else None
            scope["auth_token"] = key if user else None
        else:
            user = scope.get("user")
            scope["auth_method"] = "session" if user is not None and user.is_authenticated else None
            scope["auth_token"] = None
        return await super().__call__(scope, receive, send)


def origin_allowed(scope: dict[str, Any]) -> bool:
    """A handshake with an Origin must name an allowed host. `*` in ALLOWED_HOSTS (refused
    in production) would accept any site, which turns off the cross-site WebSocket hijacking
    defence, so here `*` only admits an Origin naming the very host the client connected to."""
    headers = scope.get("headers", [])
    origin = _header(headers, b"origin")
    if origin is None:
        return True
    try:
        host = urlsplit(origin.strip()).netloc
    except ValueError:
        return False
    domain, _port = split_domain_port(host)
    if not domain:
        return False
    allowed = [h for h in settings.ALLOWED_HOSTS if h != "*"]
    if validate_host(domain, allowed):
        return True
    if "*" in settings.ALLOWED_HOSTS:
        own, _ = split_domain_port(_header(headers, b"host") or "")
        return bool(own) and own == domain
    return False


def has_origin(scope: dict[str, Any]) -> bool:
    return _header(scope.get("headers", []), b"origin") is not None


def permission_ok(user: Any) -> bool:
    """The permission check behind 4403: an active user holding WEBSOCKET_REQUIRED_PERMISSION
    when that setting names one."""
    if not getattr(user, "is_active", False):
        return False
    perm: str = settings.WEBSOCKET_REQUIRED_PERMISSION
    return not perm or bool(user.has_perm(perm))


def credentials_verdict(*, user_id: int, method: str, token: str | None, session_key: str | None) -> int | None:
    """None while the connection may stay; else its close code: 4403 when the user was
    deactivated or lost the permission, 4401 when the credential the connection was opened
    with is gone (token revoked, session logged out or expired)."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return 4401
    if not permission_ok(user):
        return 4403
    if method == "token":
        from rest_framework.authtoken.models import Token

        ok = token is not None and Token.objects.filter(key=token, user_id=user_id).exists()
        return None if ok else 4401
    if method == "session" and session_key:
        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        return None if str(store.get(SESSION_KEY)) == str(user_id) else 4401
    return 4401


def credentials_check_many(entries: list[tuple[int, str, str | None, str | None]]) -> list[int | None]:
    """`credentials_verdict` for every connection due for a re-check, set-based: one query
    for the users, one for the tokens, one session load per distinct session. Connections
    opened together come due together, and a query per connection held the GIL long enough
    to delay the event loop's deliveries."""
    from rest_framework.authtoken.models import Token

    users = {u.pk: u for u in get_user_model().objects.filter(pk__in={e[0] for e in entries})}
    allowed = {pk: permission_ok(user) for pk, user in users.items()}
    keys = {token for _, method, token, _ in entries if method == "token" and token}
    tokens = set(Token.objects.filter(key__in=keys).values_list("key", "user_id")) if keys else set()
    sessions: dict[str, object] = {}
    verdicts: list[int | None] = []
    for user_id, method, token, session_key in entries:
        if user_id not in users:
            verdicts.append(4401)
        elif not allowed[user_id]:
            verdicts.append(4403)
        elif method == "token":
            verdicts.append(None if (token, user_id) in tokens else 4401)
        elif method == "session" and session_key:
            if session_key not in sessions:
                store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
                sessions[session_key] = store.get(SESSION_KEY)
            verdicts.append(None if str(sessions[session_key]) == str(user_id) else 4401)
        else:
            verdicts.append(4401)
    return verdicts
