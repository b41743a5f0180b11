"""Connection policy shared by every WebSocket endpoint: who may connect, how big and how
often messages may be. The codes are the protocol's (docs/protocol.md); all but the Origin refusal are sent after
accept, so a browser sees them (a close before accept is an HTTP 403 and shows as 1006)."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from .auth import has_origin, origin_allowed, permission_ok

REFUSE = "refuse"  # foreign Origin: refuse the handshake itself (cross-site hijacking defence)
NOT_AUTHENTICATED = 4401
FORBIDDEN = 4403
IDLE = 4408
TOO_LARGE = 4413
TOO_MANY = 4429


async def admission(scope: dict[str, Any]) -> str | int | None:
    """REFUSE, a close code, or None when the connection may proceed."""
    if not origin_allowed(scope):
        return REFUSE
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return NOT_AUTHENTICATED
    # Without an Origin the client is not a browser: cookies alone could be replayed by any
    # local program, so only a token admits it.
    if not has_origin(scope) and scope.get("auth_method") != "token":
        return NOT_AUTHENTICATED
    # Resolved with the user by the auth middleware (no thread hop); computed here only for
    # a scope built elsewhere.
    allowed = scope.get("permission_ok")
    if allowed is None:
        allowed = await database_sync_to_async(permission_ok)(user)
    if not allowed:
        return FORBIDDEN
    return None


def message_too_large(text_data: str | None, bytes_data: bytes | None) -> bool:
    limit: int = settings.WEBSOCKET_MESSAGE_SIZE_LIMIT
    if text_data is not None:
        # Cheap bound first: a str never encodes to fewer bytes than characters.
        return len(text_data) > limit or len(text_data.encode()) > limit
    return bytes_data is not None and len(bytes_data) > limit


class RateLimiter:
    """At most WEBSOCKET_RATE_LIMIT_MESSAGES_PER_MINUTE messages in any 60 s window."""

    def __init__(self, per_minute: int | None = None, window: float = 60.0) -> None:
        self.limit = per_minute if per_minute is not None else settings.WEBSOCKET_RATE_LIMIT_MESSAGES_PER_MINUTE
        self.window = window
        self._times: deque[float] = deque()

    def allow(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        while self._times and now - self._times[0] >= self.window:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True
