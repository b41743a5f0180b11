"""consumers/batching.py: keys asked for together are loaded in one call, a failed load fails
only its own keys, and remembered answers expire."""

from __future__ import annotations

import asyncio

import pytest

from consumers.batching import BatchLoader, TtlCache

pytestmark = pytest.mark.django_db(transaction=True)


def test_keys_asked_for_together_are_loaded_in_one_call_and_each_caller_gets_its_own_value():
    calls: list[list[int]] = []

    def load(keys: list[int]) -> dict[int, str]:
        calls.append(sorted(keys))
        return {k: f"v{k}" for k in keys if k != 3}

    async def scenario() -> list[str | None]:
        loader = BatchLoader(load)
        return list(await asyncio.gather(*(loader.get(k) for k in (1, 2, 3, 2))))

    assert asyncio.run(scenario()) == ["v1", "v2", None, "v2"]
    assert calls == [[1, 2, 3]]


def test_a_failed_load_fails_its_callers_and_the_next_load_still_answers():
    def load(keys: list[str]) -> dict[str, int]:
        if "bad" in keys:
            raise RuntimeError("database gone")
        return {k: len(k) for k in keys}

    async def scenario() -> tuple[BaseException | int | None, int | None]:
        loader = BatchLoader(load)
        first = await asyncio.gather(loader.get("bad"), return_exceptions=True)
        return first[0], await loader.get("good")

    failed, answered = asyncio.run(scenario())
    assert isinstance(failed, RuntimeError)
    assert answered == 4


def test_a_remembered_answer_expires_after_its_ttl_and_none_is_an_answer_too():
    ttl = [60.0]
    cache: TtlCache[str, int | None] = TtlCache(lambda: ttl[0])
    cache.put("gone", None)
    cache.put("kept", 7)
    assert cache.get("gone") == (True, None)
    assert cache.get("kept") == (True, 7)
    ttl[0] = -1.0
    assert cache.get("kept") == (False, None)
    cache.put("again", 1)
    cache.prune()
    assert len(cache) == 0
