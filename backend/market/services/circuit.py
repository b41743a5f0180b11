"""A per-source circuit breaker shared by every worker process (state in Redis), and its
per-symbol counterpart, the backoff of a symbol whose data every source rejects.

Closed: calls go through; each call where the source failed outright (every symbol a
transient failure: connection error, timeout, 5xx, a body not in its format) adds one to a
consecutive-failure count, and any answer from the source resets it: a quote, an unknown
symbol, or data rejected for one symbol (a zero, negative or NaN price says something about
that symbol, not about the source). After `threshold` consecutive failures the circuit opens
for `cooldown` seconds: the source is skipped and its symbols fall through to the next source.
Then it is half-open: exactly one caller (across all processes) gets to probe; success closes
it, failure opens it again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
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


def _symbol_key(symbol: str) -> str:
    return f"tf:rejected:{symbol}"


class SymbolBackoff:
    """A symbol every source answered with rejected data (a halted line quoting zero, say)
    is not asked again for `base` seconds, doubling with each rejection in a row up to
    `cap` (about one cycle interval: a symbol whose data turns sane is asked again, and
    stored, within two cycles). Its batch-mates are not held, and no source's circuit
    moves. A quote for the symbol clears it; a streak not extended for `memory` seconds is
    forgotten. One hash per symbol: `streak` and `until` (epoch seconds)."""

    def __init__(self, client: redis.Redis, *, base: float, cap: float, memory: float = 3600) -> None:
        self.client = client
        self.base = max(base, 0.1)
        self.cap = max(cap, self.base)
        self.memory = max(int(memory), int(self.cap) + 1)

    def waiting(self, symbols: Sequence[str]) -> dict[str, float]:
        """The symbols with a rejection streak, each with the seconds left before it may be
        asked again (zero or less: it may be asked now). One round trip."""
        if not symbols:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for symbol in symbols:
            pipe.hget(_symbol_key(symbol), "until")
        now = time.time()
        return {
            symbol: float(until) - now
            for symbol, until in zip(symbols, pipe.execute(), strict=True)
            if until is not None
        }

    def record_rejected(self, symbols: Sequence[str]) -> dict[str, float]:
        """Extend each symbol's streak; returns the delay now set for each."""
        if not symbols:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for symbol in symbols:
            pipe.hincrby(_symbol_key(symbol), "streak", 1)
        streaks = [int(n) for n in pipe.execute()]
        now = time.time()
        delays: dict[str, float] = {}
        for symbol, streak in zip(symbols, streaks, strict=True):
            delays[symbol] = min(self.base * 2 ** min(streak - 1, 30), self.cap)
            pipe.hset(_symbol_key(symbol), "until", str(now + delays[symbol]))
            pipe.expire(_symbol_key(symbol), self.memory)
        pipe.execute()
        return delays

    def clear(self, symbols: Sequence[str]) -> None:
        if symbols:
            self.client.delete(*[_symbol_key(s) for s in symbols])

    def streak(self, symbol: str) -> int:
        return int(self.client.hget(_symbol_key(symbol), "streak") or 0)
