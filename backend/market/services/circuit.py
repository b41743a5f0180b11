"""A per-source circuit breaker shared by every worker process (state in Redis).

Closed: calls go through; each call where the source failed outright (every symbol a
transient failure) adds one to a consecutive-failure count, any useful answer resets it.
After `threshold` consecutive failures the circuit opens for `cooldown` seconds: the source
is skipped and its symbols fall through to the next source. Then it is half-open: exactly one
caller (across all processes) gets to probe; success closes it, failure opens it again.
"""

from __future__ import annotations

import time
from enum import StrEnum

import redis


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def _key(source: str, part: str) -> str:
    return f"tf:circuit:{source}:{part}"


class CircuitBreaker:
    def __init__(self, client: redis.Redis, *, source: str, threshold: int, cooldown: float) -> None:
        self.client = client
        self.source = source
        self.threshold = max(1, threshold)
        self.cooldown = cooldown

    def state(self) -> CircuitState:
        opened_until = self.client.get(_key(self.source, "open_until"))
        if opened_until is None:
            return CircuitState.CLOSED
        return CircuitState.OPEN if time.time() < float(opened_until) else CircuitState.HALF_OPEN

    def allow(self) -> bool:
        """May this caller use the source now? In half-open, only the one probe may."""
        state = self.state()
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN:
            return False
        # The probe claim expires, so a probe that dies without reporting does not wedge it.
        return bool(self.client.set(_key(self.source, "probe"), "1", nx=True, ex=max(int(self.cooldown), 5)))

    def record_success(self) -> None:
        self.client.delete(_key(self.source, "failures"), _key(self.source, "open_until"), _key(self.source, "probe"))

    def record_failure(self) -> None:
        failures = int(self.client.incr(_key(self.source, "failures")))
        was_probing = self.client.delete(_key(self.source, "probe"))
        if failures >= self.threshold or was_probing:
            self.client.set(_key(self.source, "open_until"), str(time.time() + self.cooldown))

    def failures(self) -> int:
        return int(self.client.get(_key(self.source, "failures")) or 0)
