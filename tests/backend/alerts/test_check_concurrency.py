"""Two (or more) workers storing the same quote at once fire each alert once: the check run
from several threads at the same instant, each on its own PostgreSQL connection, against
committed alerts. (tests/tasks/test_alerts_live.py runs the real pipeline with a worker.)"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections

from backend.alerts.models import Alert, AlertEvent
from backend.alerts.services.check import AlertCheck, CheckedQuote, alerts_check

from .conftest import make_alert, q

pytestmark = pytest.mark.django_db(transaction=True)
WORKERS = 4


@pytest.fixture(autouse=True)
def _postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")


def at_once(fn: Callable[[int], Any], workers: int = WORKERS) -> list[Any]:
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = fn(i)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def test_workers_storing_the_same_quote_at_once_fire_each_alert_once(ann, bob):
    once = [make_alert(ann, "AAPL", "above", str(100 + i)) for i in range(20)]
    rearm = [make_alert(bob, "AAPL", "above", str(100 + i), repeat="rearm") for i in range(20)]
    fired: Counter[int] = Counter()
    for round_ in range(8):
        # Rounds alternate a price over every threshold and one under them all.
        quote = q("AAPL", "150" if round_ % 2 == 0 else "50", round_)

        def check(_: int, quote: CheckedQuote = quote) -> AlertCheck:
            return alerts_check(quotes=[quote])

        results = at_once(check)
        this_round = [f.alert_id for r in results for f in r.fired]
        assert len(this_round) == len(set(this_round)), "an alert fired twice for one quote"
        assert sum(len(r.events) for r in results) == len(this_round)
        fired.update(this_round)
    assert all(fired[a.pk] == 1 for a in once)
    assert all(fired[a.pk] == 4 for a in rearm)  # rounds 0, 2, 4, 6
    assert AlertEvent.objects.count() == 20 + 20 * 4
    assert not Alert.objects.filter(pk__in=[a.pk for a in once], active=True).exists()


def test_workers_storing_different_quotes_at_once_fire_a_once_alert_once(ann):
    alerts = [make_alert(ann, "MSFT", "below", str(300 - i)) for i in range(30)]
    results = at_once(lambda i: alerts_check(quotes=[q("MSFT", "100", i)]))
    fired = Counter(f.alert_id for r in results for f in r.fired)
    assert set(fired) == {a.pk for a in alerts}
    assert set(fired.values()) == {1}
    assert AlertEvent.objects.count() == 30


def test_a_connection_that_lost_its_prepared_statement_prepares_it_again(ann):
    make_alert(ann, "KO", "above", "50", repeat="rearm")
    assert len(alerts_check(quotes=[q("KO", "60", 1)]).fired) == 1
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what a connection pooler's reset does
    assert alerts_check(quotes=[q("KO", "40", 2)]).fired == []
    assert len(alerts_check(quotes=[q("KO", "61", 3)]).fired) == 1
