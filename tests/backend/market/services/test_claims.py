"""Redis claims against real Redis."""

from __future__ import annotations

import pytest

from backend.market.services.claims import beat_tick_claim


@pytest.fixture
def entry(redis_client) -> str:
    redis_client.delete("tf:beat-tick:claims-test")
    return "claims-test"


def test_beat_tick_claim_passes_one_beats_sends_and_skips_the_other_beats(entry):
    # beat A sends at 0, 10, 20; beat B half an interval later: 5, 15, 25.
    sends = [(0.0, "a"), (5.0, "b"), (10.0, "a"), (15.0, "b"), (20.0, "a"), (25.0, "b")]
    passed = [who for at, who in sends if beat_tick_claim(entry=entry, interval=10, sent_at=1_000_000 + at)]
    assert passed == ["a", "a", "a"]


def test_beat_tick_claim_judges_a_lagging_workers_backlog_by_send_time(entry):
    # A worker that fell behind runs every queued send back to back, out of order at times:
    # judged by their run times all would pass; by their send times one per tick does.
    backlog = [5.0, 0.0, 10.0, 15.0, 20.0, 25.0, 30.0]
    passed = [at for at in backlog if beat_tick_claim(entry=entry, interval=10, sent_at=1_000_000 + at)]
    assert passed == [5.0, 15.0, 25.0]


def test_beat_tick_claim_without_a_send_time_uses_the_clock(entry):
    assert beat_tick_claim(entry=entry, interval=10)
    assert not beat_tick_claim(entry=entry, interval=10)
