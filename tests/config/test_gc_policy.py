"""The garbage-collection policy of Daphne and worker processes (config/gc_policy.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from config import celery as celery_app
from config import gc_policy


@pytest.fixture
def untuned() -> Iterator[None]:
    thresholds, tuned = gc.get_threshold(), gc_policy._tuned_pid
    gc_policy._tuned_pid = None
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    gc_policy._tuned_pid = tuned


def test_tuning_freezes_what_exists_and_raises_the_thresholds_once(untuned):
    gc_policy.gc_tune_process((50_000, 20, 100))
    assert gc.get_threshold() == (50_000, 20, 100)
    assert gc.get_freeze_count() > 0
    frozen = gc.get_freeze_count()
    gc_policy.gc_tune_process((50_000, 20, 100))  # a second hub in the process changes nothing
    assert gc.get_freeze_count() == frozen


def test_a_forked_process_tunes_again(untuned, monkeypatch):
    gc_policy.gc_tune_process((50_000, 20, 100))
    monkeypatch.setattr(gc_policy.os, "getpid", lambda: -1)  # as in a pool process after fork
    gc_policy.gc_tune_process((10_000, 10, 10))
    assert gc.get_threshold() == (10_000, 10, 10)


def test_a_worker_process_is_tuned_with_the_worker_thresholds(untuned, settings):
    settings.WORKER_GC_THRESHOLDS = (12_345, 10, 10)
    celery_app.gc_tune_worker_process()
    assert gc.get_threshold() == (12_345, 10, 10)
    assert gc.get_freeze_count() > 0


def test_empty_thresholds_leave_cpython_alone(untuned):
    before = gc.get_threshold()
    gc_policy.gc_tune_process(())
    assert gc.get_threshold() == before
    assert not gc_policy.gc_collect_if_quiet(now=1000.0, last_batch_at=0.0, last_collect_at=0.0)


def test_the_full_collection_waits_for_a_quiet_moment_and_its_interval(untuned, settings):
    settings.WEBSOCKET_GC_COLLECT_INTERVAL = 60
    gc_policy.gc_tune_process((50_000, 20, 100))
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
