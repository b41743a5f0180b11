"""The WebSocket process's garbage-collection policy (consumers/gc_policy.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from consumers import gc_policy


@pytest.fixture
def untuned() -> Iterator[None]:
    thresholds, tuned = gc.get_threshold(), gc_policy._tuned
    gc_policy._tuned = False
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    gc_policy._tuned = tuned


def test_tuning_freezes_what_exists_and_raises_the_thresholds_once(untuned, settings):
    settings.WEBSOCKET_GC_THRESHOLDS = (50_000, 20, 100)
    gc_policy.gc_tune_process()
    assert gc.get_threshold() == (50_000, 20, 100)
    assert gc.get_freeze_count() > 0
    frozen = gc.get_freeze_count()
    gc_policy.gc_tune_process()  # a second hub in the process changes nothing
    assert gc.get_freeze_count() == frozen


def test_empty_thresholds_leave_cpython_alone(untuned, settings):
    settings.WEBSOCKET_GC_THRESHOLDS = ()
    before = gc.get_threshold()
    gc_policy.gc_tune_process()
    assert gc.get_threshold() == before
    assert not gc_policy.gc_collect_if_quiet(now=1000.0, last_batch_at=0.0, last_collect_at=0.0)


def test_the_full_collection_waits_for_a_quiet_moment_and_its_interval(untuned, settings):
    settings.WEBSOCKET_GC_THRESHOLDS = (50_000, 20, 100)
    settings.WEBSOCKET_GC_COLLECT_INTERVAL = 60
    gc_policy.gc_tune_process()
    # A batch half a second ago: not quiet.
    assert not gc_policy.gc_collect_if_quiet(now=1000.0, last_batch_at=999.5, last_collect_at=0.0)
    # Quiet, but the last collection was 30 s ago.
    assert not gc_policy.gc_collect_if_quiet(now=1000.0, last_batch_at=990.0, last_collect_at=970.0)

    class Cycle:
        other: object

    a, b = Cycle(), Cycle()
    a.other, b.other = b, a
    del a, b  # garbage only a full collection reclaims once it is old
    collected: list[int] = []
    gc.callbacks.append(lambda phase, info: collected.append(info["collected"]) if phase == "stop" else None)
    try:
        assert gc_policy.gc_collect_if_quiet(now=1000.0, last_batch_at=990.0, last_collect_at=900.0)
    finally:
        gc.callbacks.pop()
    assert sum(collected) >= 2
