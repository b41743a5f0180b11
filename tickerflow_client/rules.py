"""The protocol's rules a client follows (docs/protocol.md): the close codes that end a
session for good, the reconnect backoff, the symbol rule, and the small types around them."""

from __future__ import annotations

import random as random_module
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from .messages import ErrorData

SIGNED_OUT_CODES = frozenset({4401, 4403})
PING_INTERVAL = 30.0
BASE_DELAY = 1.0
MAX_DELAY = 30.0
# The cap while no attempt reaches a server (refused: the web process is restarting, or the
# network is down): a refused connect costs the server nothing, and the client is back within
# seconds. Once a server accepted and closed (1011, 4429) the full backoff applies.
UNREACHED_MAX_DELAY = 4.0
# Re-subscribing costs one message per subscription against the server's per-connection
# rate limit: a burst of gaps must cause one re-sync, not one per gap.
MIN_RESYNC_INTERVAL = 5.0
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9.\-^=/]{1,20}$")
NORMAL_CLOSURE = 1000


class Status(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    SIGNED_OUT = "signed_out"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class Gap:
    """Frames were lost: `received` came when `expected` was due."""

    expected: int
    received: int


class ServerError(Exception):
    """An `error` message of the server (the connection stays open)."""

    def __init__(self, data: ErrorData) -> None:
        super().__init__(f"{data.get('code')}: {data.get('message')}")
        self.data = data
        self.code = data.get("code")


def backoff_delay(
    attempt: int,
    *,
    base_delay: float = BASE_DELAY,
    max_delay: float = MAX_DELAY,
    random: Callable[[], float] = random_module.random,
) -> float:
    """Full-jitter backoff: a uniform delay in [0, min(max_delay, base_delay * 2^attempt))."""
    ceiling = min(max_delay, base_delay * 2 ** max(0, attempt))
    return random() * ceiling


def normalize_symbol(raw: str) -> str:
    """Upper-cases and checks a symbol (docs/protocol.md, "Symbols"); ValueError if malformed."""
    symbol = str(raw).strip().upper()
    if not SYMBOL_PATTERN.match(symbol):
        raise ValueError(f"not a symbol: {raw!r}")
    return symbol


class Socket(Protocol):
    """What the client uses of a connection (a websockets ClientConnection)."""

    async def send(self, message: str) -> None: ...
    async def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None: ...


def portfolio_id_check(raw: int | str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError(f"not a portfolio id: {raw!r}")
    return value
