"""The check of a stored batch against the alerts: crossing semantics of the four
conditions, `once` and `rearm`, a batch checked twice, late quotes, and one statement per
batch on PostgreSQL. Every test runs with the set-based statement and the ORM pass."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backend.alerts.models import Alert, AlertEvent
from backend.alerts.services.check import alerts_check, pg_array_literal

from .conftest import make_alert, q

pytestmark = pytest.mark.django_db

# condition, threshold, a quote that does not satisfy it, one exactly at it, one past it
CROSSINGS = [
    ("above", "100", {"price": "99.99"}, {"price": "100"}, {"price": "130"}),
    ("below", "100", {"price": "100.01"}, {"price": "100"}, {"price": "70"}),
    ("change_percent_above", "5", {"price": "10", "change_percent": "4.99"}, {"price": "10", "change_percent": "5"},
     {"price": "10", "change_percent": "12"}),
    ("change_percent_below", "-3", {"price": "10", "change_percent": "-2.99"}, {"price": "10", "change_percent": "-3"},
     {"price": "10", "change_percent": "-9"}),
]  # fmt: skip


def check(*quotes):
    return alerts_check(quotes=list(quotes))


@pytest.mark.parametrize(("condition", "threshold", "below_it", "at_it", "past_it"), CROSSINGS)
def test_each_condition_fires_at_its_threshold_and_not_before(
    impl, ann, condition, threshold, below_it, at_it, past_it
):
    at_threshold = make_alert(ann, "AAPL", condition, threshold)
    assert check(q("AAPL", minute=1, **below_it)).fired == []
    result = check(q("AAPL", minute=2, **at_it))
    assert [f.alert_id for f in result.fired] == [at_threshold.pk]
    (event,) = result.events
    assert event["group"] == f"user.{ann.pk}"
    assert event["type"] == "notification"
    data = event["data"]
    assert set(data) == {"kind", "alert_id", "event_id", "symbol", "condition", "threshold", "price", "triggered_at",
                         "message"}  # fmt: skip
    assert (data["kind"], data["symbol"], data["condition"]) == ("price_alert", "AAPL", condition)
    assert data["threshold"] == float(threshold)
    assert data["price"] == float(at_it["price"])
    assert data["event_id"] == AlertEvent.objects.get().pk
    assert "AAPL" in data["message"]
    assert data["triggered_at"].endswith("Z")
    # A quote past the threshold fires a fresh alert too.
    second = make_alert(ann, "AAPL", condition, threshold)
    assert [f.alert_id for f in check(q("AAPL", minute=3, **past_it)).fired] == [second.pk]


@pytest.mark.parametrize(("condition", "threshold", "below_it", "at_it", "past_it"), CROSSINGS)
def test_rearm_fires_again_only_after_a_quote_where_the_condition_was_false(
    impl, ann, condition, threshold, below_it, at_it, past_it
):
    alert = make_alert(ann, "AAPL", condition, threshold, repeat="rearm")
    assert len(check(q("AAPL", minute=1, **at_it)).fired) == 1
    alert.refresh_from_db()
    assert (alert.active, alert.armed) == (True, False)
    assert check(q("AAPL", minute=2, **past_it)).fired == []  # still satisfied: stays quiet
    assert check(q("AAPL", minute=3, **below_it)).fired == []  # false again: re-armed
    alert.refresh_from_db()
    assert (alert.active, alert.armed) == (True, True)
    assert len(check(q("AAPL", minute=4, **past_it)).fired) == 1
    assert AlertEvent.objects.filter(alert=alert).count() == 2


def test_once_fires_once_and_then_is_inactive(impl, ann):
    alert = make_alert(ann, "MSFT", "above", "300")
    assert len(check(q("MSFT", "301", 1)).fired) == 1
    assert check(q("MSFT", "290", 2)).fired == []
    assert check(q("MSFT", "310", 3)).fired == []
    alert.refresh_from_db()
    assert alert.active is False
    assert AlertEvent.objects.count() == 1


def test_the_same_batch_checked_twice_fires_once(impl, ann):
    once = make_alert(ann, "AAPL", "above", "100")
    rearm = make_alert(ann, "AAPL", "below", "200", repeat="rearm")
    other = make_alert(ann, "MSFT", "change_percent_above", "1", repeat="rearm")
    batch = [q("AAPL", "150", 1), q("MSFT", "10", 1, change_percent="2")]
    first = alerts_check(quotes=batch)
    again = alerts_check(quotes=batch)
    assert sorted(f.alert_id for f in first.fired) == sorted([once.pk, rearm.pk, other.pk])
    assert again.fired == []
    assert again.events == []
    assert AlertEvent.objects.count() == 3


def test_a_quote_older_than_the_one_that_fired_changes_nothing(impl, ann):
    alert = make_alert(ann, "AAPL", "above", "100", repeat="rearm")
    assert len(check(q("AAPL", "120", 5)).fired) == 1
    assert check(q("AAPL", "90", 4)).fired == []  # late: would have re-armed it
    alert.refresh_from_db()
    assert alert.armed is False
    assert check(q("AAPL", "90", 6)).fired == []
    alert.refresh_from_db()
    assert alert.armed is True


def test_a_quote_without_change_percent_neither_fires_nor_rearms_change_alerts(impl, ann):
    alert = make_alert(ann, "AAPL", "change_percent_below", "0", repeat="rearm")
    assert check(q("AAPL", "10", 1)).fired == []
    assert len(check(q("AAPL", "10", 2, change_percent="-1")).fired) == 1
    assert check(q("AAPL", "10", 3)).fired == []
    alert.refresh_from_db()
    assert alert.armed is False


def test_only_the_batchs_symbols_active_alerts_fire_each_to_its_owner(impl, ann, bob):
    mine = make_alert(ann, "AAPL", "above", "100")
    theirs = make_alert(bob, "AAPL", "above", "110")
    make_alert(ann, "MSFT", "above", "1")  # not in the batch
    off = make_alert(bob, "AAPL", "above", "1")
    Alert.objects.filter(pk=off.pk).update(active=False)
    result = check(q("AAPL", "120", 1))
    assert {(f.alert_id, f.owner_id) for f in result.fired} == {(mine.pk, ann.pk), (theirs.pk, bob.pk)}
    assert {e["group"] for e in result.events} == {f"user.{ann.pk}", f"user.{bob.pk}"}


def test_the_latest_quote_of_a_symbol_counts_when_a_batch_holds_two(impl, ann):
    make_alert(ann, "AAPL", "above", "100")
    result = alerts_check(quotes=[q("AAPL", "120", 2), q("AAPL", "90", 1)])
    assert [f.price for f in result.fired] == [Decimal("120")]


def test_a_firing_keeps_the_quote_and_the_condition_it_fired_on(impl, ann):
    alert = make_alert(ann, "AAPL", "above", "100.5")
    check(q("AAPL", "100.5000004", 7))  # stored at six places, like the quote
    event = AlertEvent.objects.get()
    assert (event.alert_id, event.owner_id, event.condition) == (alert.pk, ann.pk, "above")
    assert (event.threshold, event.price, event.read_at) == (Decimal("100.5"), Decimal("100.5"), None)
    assert event.quoted_at == q("AAPL", "1", 7).quoted_at


def test_unknown_symbols_and_an_empty_batch_are_fine(impl, ann):
    make_alert(ann, "AAPL", "above", "1")
    assert check().fired == []
    assert check(q("NOPE", "5", 1)).fired == []


def test_one_statement_per_batch_whatever_the_number_of_alerts(ann, bob):
    if connection.vendor != "postgresql":
        pytest.skip("the set-based statement is PostgreSQL's")
    for i in range(10):
        for n in range(20):
            make_alert(
                ann if n % 2 else bob, f"S{i}", ["above", "below"][n % 2], str(90 + n), ["once", "rearm"][n % 3 % 2]
            )
    batch = [q(f"S{i}", "100", 1, change_percent="1") for i in range(10)]
    with CaptureQueriesContext(connection) as queries:
        result = alerts_check(quotes=batch)
    assert len(queries) == 1
    assert len(result.fired) == AlertEvent.objects.count() > 0


def test_symbols_that_read_as_sql_words_and_quotes_without_change_percent_pass_the_statement_intact(impl, ann):
    # The batch goes to PostgreSQL as array literals: a symbol spelled NULL must stay a string.
    make_alert(ann, "NULL", "above", "10")
    make_alert(ann, "BRK/B", "below", "500")
    make_alert(ann, "^GSPC", "change_percent_below", "-1")
    fired = check(
        q("NULL", "10.000001", 1), q("BRK/B", "499.5", 1), q("^GSPC", "5000", 1, change_percent="-1.25")
    ).fired
    assert sorted((f.symbol, f.price, f.change_percent) for f in fired) == [
        ("BRK/B", Decimal("499.5"), None),
        ("NULL", Decimal("10.000001"), None),
        ("^GSPC", Decimal("5000"), Decimal("-1.25")),
    ]
    assert {f.quoted_at for f in fired} == {q("X", "1", 1).quoted_at}


def test_array_literal_round_trips_text_decimals_times_and_nulls():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's array input")
    moment = q("X", "1", 1).quoted_at
    texts = ["NULL", 'say "hi"', "back\\slash", "a,b{c}"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT %s::varchar[], %s::numeric[], %s::timestamptz[]",
            [pg_array_literal(texts), pg_array_literal([Decimal("1.000001"), None]), pg_array_literal([moment])],
        )
        assert cursor.fetchone() == (texts, [Decimal("1.000001"), None], [moment])
