"""The revaluation tasks publish what the services return: one publish_batch call per
revaluation round once it committed, a failure logged and never failing the task (the
figures are stored), and the same counts as before."""

from __future__ import annotations

import logging

import pytest

from backend.core.redis import redis_client
from backend.portfolios.models import Portfolio
from backend.portfolios.services.revaluation import coalesce
from tasks import portfolios as tasks

from .conftest import quote_set

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean_keys():
    client = redis_client()
    client.delete(coalesce.PENDING, coalesce.PROCESSING, coalesce.LOCK)
    yield
    client.delete(coalesce.PENDING, coalesce.PROCESSING, coalesce.LOCK)


@pytest.fixture
def published(monkeypatch) -> list[list[dict]]:
    batches: list[list[dict]] = []

    def record(events) -> int:
        batches.append(list(events))
        return len(batches[-1])

    monkeypatch.setattr(tasks, "publish_batch", record)
    return batches


@pytest.mark.django_db(transaction=True)  # as on a worker: each round commits on its own
def test_each_round_of_the_coalesced_task_is_published_in_one_call_as_it_commits(
    three_portfolios, published, monkeypatch, settings
):
    settings.PORTFOLIO_RECALC_INTERVAL = 0
    loss = three_portfolios["loss"]
    revalue = coalesce.portfolios_revalue_for_symbols

    def another_batch_arrives(**kwargs):
        assert len(published) == (0 if kwargs["symbols"] == ["AAPL"] else 1)  # the round before went out
        result = revalue(**kwargs)
        if kwargs["symbols"] == ["AAPL"]:  # during the first round, a batch changes MSFT
            quote_set("MSFT", "420.25", "415.75")
            redis_client().sadd(coalesce.PENDING, "MSFT")
        return result

    monkeypatch.setattr(coalesce, "portfolios_revalue_for_symbols", another_batch_arrives)
    counts = tasks.revalue_for_symbols(["AAPL"])
    # Round 1: AAPL -> Gains, Loss (first revaluation); round 2: MSFT -> Loss, +2.4 %.
    assert [sorted({e["group"] for e in batch}) for batch in published] == [
        sorted([f"portfolio.{three_portfolios['gains'].pk}", f"portfolio.{loss.pk}"]),
        sorted([f"portfolio.{loss.pk}", f"user.{loss.owner_id}"]),
    ]
    assert counts == {
        "portfolios_valued": 3,
        "portfolios_changed": 3,
        "snapshots_created": 3,
        "published": 2 + 2,
        "coalesced": 0,
    }


def test_symbols_handed_to_a_runner_at_work_are_counted_as_coalesced(three_portfolios, published):
    redis_client().set(coalesce.LOCK, "another-runner", ex=60)
    assert tasks.revalue_for_symbols(["MSFT"]) == {
        "portfolios_valued": 0,
        "portfolios_changed": 0,
        "snapshots_created": 0,
        "published": 0,
        "coalesced": 1,
    }
    assert published == []


def test_revalue_portfolio_publishes_once_its_revaluation_committed(
    three_portfolios, published, django_capture_on_commit_callbacks
):
    gains = three_portfolios["gains"]
    with django_capture_on_commit_callbacks() as callbacks:
        counts = tasks.revalue_portfolio(gains.pk)
        assert published == []  # not before the commit
    for callback in callbacks:
        callback()
    assert [[e["type"] for e in batch] for batch in published] == [["portfolio_update"]]
    assert counts == {"portfolios_changed": 1, "published": 0}  # counted when published, after the commit
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.revalue_portfolio(gains.pk) == {"portfolios_changed": 0, "published": 0}
    assert len(published) == 1  # nothing changed: nothing to publish


def test_a_publish_failure_is_logged_and_the_revaluation_stays_stored(
    three_portfolios, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    def broken(events):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(tasks, "publish_batch", broken)
    gains = three_portfolios["gains"]
    with caplog.at_level(logging.ERROR, logger="tasks.portfolios"), django_capture_on_commit_callbacks(execute=True):
        counts = tasks.revalue_portfolio(gains.pk)
    assert counts == {"portfolios_changed": 1, "published": 0}
    assert "publishing 1 portfolio events failed" in caplog.text
    assert Portfolio.objects.get(pk=gains.pk).valued_at is not None
