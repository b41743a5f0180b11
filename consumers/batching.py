"""Many coroutines waiting on one database query, and a short in-process memory of answers.

Every database access of a consumer goes through Channels' single sync thread
(`database_sync_to_async`): a burst of 3,000 clients subscribing one query at a time queued
for minutes. A `BatchLoader` collects the keys asked for while the thread is busy and loads
them all in one hop (docs/scale.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

from channels.db import database_sync_to_async

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Answers kept for `ttl` seconds (read at each call, so tests can change the setting)."""

    def __init__(self, ttl: Callable[[], float]) -> None:
        self._ttl = ttl
        self._entries: dict[K, tuple[float, V]] = {}
        self._prune_at = 1024

    def get(self, key: K) -> tuple[bool, V | None]:
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        if time.monotonic() - entry[0] >= self._ttl():  # a TTL of 0 keeps nothing
            del self._entries[key]
            return False, None
        return True, entry[1]

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (time.monotonic(), value)
        if len(self._entries) > self._prune_at:
            # Bounded without a sweeper: expired answers go before the memory doubles.
            self.prune()
            self._prune_at = max(1024, 2 * len(self._entries))

    def drop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def prune(self) -> None:
        """Forget expired answers (the hub's sweep calls this, so memory stays bounded)."""
        limit = time.monotonic() - self._ttl()
        for key in [k for k, (at, _) in self._entries.items() if at < limit]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


class BatchLoader(Generic[K, V]):
    """`await loader.get(key)`: the value `load` returns for it, where `load` receives every
    key asked for meanwhile (at most `max_batch`) in one call on the database thread. One
    load runs at a time: keys asked for during a load go into the next one. A key absent
    from the answer reads as None; an exception fails the keys of that load only."""

    def __init__(self, load: Callable[[list[K]], dict[K, V]], *, max_batch: int = 1000) -> None:
        self._load = database_sync_to_async(load)
        self._max_batch = max_batch
        self._pending: dict[K, list[asyncio.Future[V | None]]] = {}
        self._runner: asyncio.Task[None] | None = None
        self.loads = 0  # how many database hops: the tests and the bench read it

    async def get(self, key: K) -> V | None:
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append(future)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())
        return await future

    async def get_many(self, keys: Iterable[K]) -> dict[K, V | None]:
        wanted = list(dict.fromkeys(keys))
        values = await asyncio.gather(*(self.get(k) for k in wanted))
        return dict(zip(wanted, values, strict=True))

    async def _run(self) -> None:
        # One turn of the loop lets every coroutine woken by the same network read ask first.
        await asyncio.sleep(0)
        while self._pending:
            keys = list(self._pending)[: self._max_batch]
            waiting = {k: self._pending.pop(k) for k in keys}
            self.loads += 1
            try:
                values = await self._load(keys)
            except Exception as exc:
                for futures in waiting.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                continue
            for key, futures in waiting.items():
                for future in futures:
                    if not future.done():
                        future.set_result(values.get(key))
