"""Who is on a WebSocket and whether they may stay: the token header beside the session
cookie, the Origin policy, and the periodic re-check of long connections."""

from __future__ import annotations

import asyncio
import weakref
from importlib import import_module
from typing import Any
from urllib.parse import urlsplit

from channels.auth import get_user
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http.request import split_domain_port, validate_host

from .batching import BatchLoader, TtlCache


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


# (the user, whether permission_ok holds for them), or None: no such credential.
Resolved = tuple[AbstractBaseUser, bool]


def users_for_tokens(keys: list[str]) -> dict[str, Resolved]:
    """The active users these token keys belong to, in one query."""
    from rest_framework.authtoken.models import Token

    tokens = Token.objects.select_related("user").filter(key__in=keys)
    return {t.key: (t.user, permission_ok(t.user)) for t in tokens if t.user.is_active}


def users_for_sessions(keys: list[str]) -> dict[str, Resolved]:
    """The users these session keys are logged in as, checked as Django does (the session's
    auth hash; a session whose hash no longer matches is flushed), in one database hop."""
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    found: dict[str, Resolved] = {}
    for key in keys:
        user = get_user.func({"session": store_class(key)})  # channels.auth's own check
        if user.is_authenticated:
            found[key] = (user, permission_ok(user))
    return found


def _ttl() -> float:
    return float(settings.WEBSOCKET_AUTH_CACHE_SECONDS)


class UserCache:
    """One event loop's memory of who a token or a session is, kept WEBSOCKET_AUTH_CACHE_SECONDS
    (a revoked credential is refused at connect after at most that; open connections are
    re-checked by the hub's sweep). Misses are loaded in batches (consumers/batching.py)."""

    def __init__(self) -> None:
        self.tokens: TtlCache[str, Resolved | None] = TtlCache(_ttl)
        self.sessions: TtlCache[str, Resolved | None] = TtlCache(_ttl)
        self.token_loader = BatchLoader(users_for_tokens)
        self.session_loader = BatchLoader(users_for_sessions)

    async def token(self, key: str) -> Resolved | None:
        return await self._resolve(self.tokens, self.token_loader, key)

    async def session(self, key: str) -> Resolved | None:
        return await self._resolve(self.sessions, self.session_loader, key)

    @staticmethod
    async def _resolve(
        cache: TtlCache[str, Resolved | None], loader: BatchLoader[str, Resolved], key: str
    ) -> Resolved | None:
        found, value = cache.get(key)
        if found:
            return value
        value = await loader.get(key)
        cache.put(key, value)
        return value


_caches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, UserCache] = weakref.WeakKeyDictionary()


def user_cache() -> UserCache:
    loop = asyncio.get_running_loop()
    cache = _caches.get(loop)
    if cache is None:
        cache = _caches[loop] = UserCache()
    return cache


class WebsocketAuthMiddleware:
    """Sets scope["user"] from a token header (wins over the session) or the session cookie,
    and records scope["auth_method"] = "token" | "session" | None, scope["auth_token"],
    scope["session"] (None without a session cookie; for the re-checks) and
    scope["permission_ok"] (for admission). Runs inside Channels' CookieMiddleware and
    replaces its session and auth middleware, which took two thread hops per connection even
    for a token client, and a copy of the scope each that lived as long as the connection."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        # CookieMiddleware hands every connection a scope of its own: completed in place.
        cache = user_cache()
        key = _token_from_headers(scope.get("headers", []))
        session_key = scope.get("cookies", {}).get(settings.SESSION_COOKIE_NAME)
        store_class = import_module(settings.SESSION_ENGINE).SessionStore
        scope["session"] = store_class(session_key) if session_key else None  # lazy: no query
        resolved: Resolved | None = None
        method: str | None = None
        if key is not None:
            resolved = await cache.token(key)
            method = "token"
        elif session_key:
            resolved = await cache.session(session_key)
            method = "session"
        scope["user"] = resolved[0] if resolved else AnonymousUser()
        scope["permission_ok"] = resolved[1] if resolved else False
        scope["auth_method"] = method if resolved else None
        scope["auth_token"] = key if resolved and method == "token" else None
        return await self.inner(scope, receive, send)


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
