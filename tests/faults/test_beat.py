"""Two beat processes at once (a deploy overlap, a mistaken scale to beat=2): each cycle runs once."""

from __future__ import annotations

import itertools
import time

import pytest
from django.utils import timezone

from backend.market.models import RefreshRun
from tests.live import celery_worker
from tests.tasks.prices_helpers import hold, price_all, worker_env

from .helpers import start_beat

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

INTERVAL = 2
WINDOW = 16


def test_two_beats_at_once_run_each_cycle_once_and_never_overlap(upstream):
    symbols = ["AAA", "BBB", "CCC"]
    hold(symbols)
    price_all(upstream, symbols)
    env = worker_env(upstream, ("finnhub",), REALTIME_UPDATE_INTERVAL=str(INTERVAL))
    with celery_worker(**env):
        beats = [start_beat("beat-a", **env)]
        try:
            # The second beat ticks half an interval after the first: its sends never meet a
            # running cycle, so the cycle lock alone would not absorb them.
            beats[0].wait_for_log("Sending due task refresh-prices", timeout=60)
            time.sleep(INTERVAL / 2)
            beats.append(start_beat("beat-b", **env))
            beats[1].wait_for_log("Sending due task refresh-prices", timeout=60)
            first = RefreshRun.objects.filter(kind="scheduled").order_by("-pk").first()
            assert first is not None
            time.sleep(WINDOW)
            # Counted now, with the runs up to now: stopping a beat on a loaded machine can
            # take seconds, and it goes on sending meanwhile.
            sent = sum(b.log().count("Sending due task refresh-prices") for b in beats)
            window_end = timezone.now()
        finally:
            for beat in beats:
                beat.stop()
        time.sleep(1)  # let the last cycle's batches land
    runs = list(
        RefreshRun.objects.filter(kind="scheduled", pk__gte=first.pk, started_at__lte=window_end).order_by("started_at")
    )
    elapsed = (runs[-1].started_at - runs[0].started_at).total_seconds()
    print(f"\ntwo beats: {sent} sends, {len(runs)} cycles over {elapsed:.1f} s (interval {INTERVAL} s)")
    assert sent >= 1.5 * len(runs), "both beats fired"  # the duplicate sends happened and were absorbed
    assert len(runs) <= elapsed / INTERVAL + 1.5, [r.started_at.isoformat() for r in runs]
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None
        assert later.started_at >= earlier.finished_at, "two cycles overlapped"
        gap = (later.started_at - earlier.started_at).total_seconds()
        assert gap >= INTERVAL * 0.5, f"two cycles {gap:.2f} s apart"
