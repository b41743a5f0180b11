"""Writing daily values: the end-of-day pass (set-based) gives the rows the per-portfolio
derivation gives; a back-dated transaction, a deleted one and a history backfill re-derive
from their day; re-running changes nothing."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import connection

from backend.market.models import Asset
from backend.performance.models import DailyValue
from backend.performance.services.daily_values import daily_values_close, daily_values_derive
from backend.performance.services.rederive import (
    rederive_pending,
    rederive_request,
    rederive_request_symbols,
)
from backend.portfolios.models import Portfolio, Transaction
from backend.portfolios.services.transactions import transaction_delete
from backend.portfolios.signals import ledger_changed

from .conftest import TODAY, closes, day
from .helpers import D, buy, dividend, sell

pytestmark = pytest.mark.django_db
# The set-based statements (sql.py) and the comparison with them run on PostgreSQL only.
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="set-based pass: PostgreSQL")
FIELDS = ("date", "value", "net_flows", "cost", "realized_gain", "dividends", "fees", "unpriced")


def rows(portfolio: Portfolio) -> list[tuple]:
    return list(DailyValue.objects.filter(portfolio=portfolio).order_by("date").values_list(*FIELDS))


@pytest.fixture
def ledgers(ann, main) -> list[Portfolio]:
    """Three portfolios: dollars only; a foreign holding with a sale and a dividend; one
    with a buy today (after yesterday's end)."""
    closes("AAPL", {6: "100", 3: "104", 1: "110", 0: "111"})
    closes("SAP.DE", {6: "50", 2: "55", 0: "56"}, currency="EUR")
    closes("EURUSD=X", {6: "1.10", 1: "1.12", 0: "1.13"})
    buy(main, "AAPL", "10", "100", 6, fee=D("1.5"))
    euro = Portfolio.objects.create(owner=ann, name="Euro")
    buy(euro, "SAP.DE", "20", "50", 6, fx_rate=D("1.10"))
    sell(euro, "SAP.DE", "5", "55", 2, fx_rate=D("1.11"), fee=D(2))
    dividend(euro, "SAP.DE", "10", 1, fx_rate="1.12")
    busy = Portfolio.objects.create(owner=ann, name="Busy")
    buy(busy, "AAPL", "1", "104", 3)
    buy(busy, "AAPL", "2", "111", 0)
    return [main, euro, busy]


@postgresql_only
def test_the_end_of_day_pass_writes_what_the_derivation_writes(ledgers):
    for portfolio in ledgers:  # closed up to the day before yesterday
        daily_values_derive(portfolio_id=portfolio.pk, since=date(2000, 1, 1), today=day(2))
    result = daily_values_close(today=TODAY)
    assert (result.day, result.rows_closed, result.rows_live) == (day(1), 2, 3)  # Busy moved today
    closed = {p.pk: rows(p)[-2:] for p in ledgers}  # yesterday and today
    for portfolio in ledgers:
        daily_values_derive(portfolio_id=portfolio.pk, since=date(2000, 1, 1), today=TODAY)
        assert rows(portfolio)[-2:] == closed[portfolio.pk]
    main, euro, busy = ledgers
    assert rows(main)[-1][1] == 10 * D(111)
    assert rows(busy)[-2][1] == 1 * D(110)  # yesterday: before today's buy
    euro_yesterday = rows(euro)[-2]
    assert euro_yesterday[1] == 15 * D(55) * D("1.12")
    assert euro_yesterday[2] == -10 * D("1.12")
    assert euro_yesterday[5] == 10 * D("1.12")


def test_the_end_of_day_pass_is_idempotent_and_fills_a_missed_day(ledgers):
    main = ledgers[0]
    daily_values_derive(portfolio_id=main.pk, since=date(2000, 1, 1), today=day(4))
    daily_values_close(today=TODAY)
    first = rows(main)
    assert [r[0] for r in first] == [day(n) for n in range(6, -1, -1)]  # days 3 and 2 filled
    daily_values_close(today=TODAY)
    assert rows(main) == first


def test_a_back_dated_buy_signals_its_day_and_re_derives_from_it(main):
    closes("AAPL", {10: "100", 5: "120", 0: "130"})
    buy(main, "AAPL", "10", "100", 10)
    daily_values_derive(portfolio_id=main.pk, since=date(2000, 1, 1), today=TODAY)
    before = rows(main)
    sent: list[dict] = []

    def record(**kwargs: object) -> None:
        sent.append(kwargs)

    ledger_changed.connect(record, dispatch_uid="test-record")
    try:
        buy(main, "AAPL", "5", "120", 5)
    finally:
        ledger_changed.disconnect(dispatch_uid="test-record")
    assert [(s["portfolio_id"], s["since"]) for s in sent] == [(main.pk, day(5))]
    assert rederive_request(since_by_portfolio={main.pk: day(5)}) is True
    assert rederive_request(since_by_portfolio={main.pk: day(3)}) is False  # a runner is scheduled
    assert rederive_pending(today=TODAY).portfolios == 1
    after = rows(main)
    assert after[: len(after) - 6] == before[: len(before) - 6]  # days before day 5 untouched
    by_day = {r[0]: r for r in after}
    assert by_day[day(5)][1:3] == (15 * D(120), 5 * D(120))
    assert by_day[day(1)][1] == 15 * D(120)


def test_the_earliest_day_asked_for_wins(main):
    closes("AAPL", {10: "100", 0: "100"})
    buy(main, "AAPL", "10", "100", 10)
    rederive_request(since_by_portfolio={main.pk: day(2)})
    rederive_request(since_by_portfolio={main.pk: day(8)})
    rederive_request(since_by_portfolio={main.pk: day(4)})
    assert rederive_pending(today=TODAY).portfolios == 1
    assert [r[0] for r in rows(main)] == [day(n) for n in range(8, -1, -1)]
    assert rederive_pending(today=TODAY).portfolios == 0


def test_a_runner_out_of_time_leaves_the_rest_to_the_next(main, ann):
    closes("AAPL", {4: "100", 0: "100"})
    other = Portfolio.objects.create(owner=ann, name="Other")
    for portfolio in (main, other):
        buy(portfolio, "AAPL", "1", "100", 4)
    rederive_request(since_by_portfolio={main.pk: day(4), other.pk: day(4)})
    late = rederive_pending(today=TODAY, budget_seconds=-1)
    assert (late.portfolios, late.left) == (0, 2)
    assert not DailyValue.objects.exists()
    again = rederive_pending(today=TODAY)
    assert (again.portfolios, again.left) == (2, 0)
    assert DailyValue.objects.filter(date=day(4)).count() == 2


def test_the_end_of_day_pass_out_of_time_goes_on_at_the_next(ledgers):
    first = daily_values_close(today=TODAY, budget_seconds=-1)
    assert (first.portfolios_derived, first.portfolios_left) == (0, 3)  # none has rows yet
    second = daily_values_close(today=TODAY)
    assert (second.portfolios_derived, second.portfolios_left) == (3, 0)
    assert rows(ledgers[0])[0][0] == day(6)


def test_deleting_the_first_transaction_drops_the_days_before_the_next(main):
    closes("AAPL", {10: "100", 0: "100"})
    buy(main, "AAPL", "10", "100", 10)
    buy(main, "AAPL", "1", "100", 3)
    daily_values_derive(portfolio_id=main.pk, since=date(2000, 1, 1), today=TODAY)
    transaction_delete(transaction_row=Transaction.objects.filter(portfolio=main).order_by("executed_at")[0])
    daily_values_derive(portfolio_id=main.pk, since=day(10), today=TODAY)
    assert rows(main)[0][0] == day(3)
    assert rows(main)[0][1] == D(100)


def test_a_history_backfill_re_derives_the_holders_and_the_pairs_converts(main, ann):
    closes("SAP.DE", {10: "50", 0: "50"}, currency="EUR")
    closes("EURUSD=X", {10: "1.10", 0: "1.10"})
    closes("KO", {10: "60", 0: "60"})
    buy(main, "SAP.DE", "10", "50", 10, fx_rate=D("1.10"))
    other = Portfolio.objects.create(owner=ann, name="Cola")
    buy(other, "KO", "1", "60", 10)
    for portfolio in (main, other):
        daily_values_derive(portfolio_id=portfolio.pk, since=date(2000, 1, 1), today=TODAY)
    closes("EURUSD=X", {5: "1.20"})  # the backfill
    assert rederive_request_symbols(symbols=["EURUSD=X"], since=day(5)) is True
    assert rederive_pending(today=TODAY).portfolios == 1  # the KO holder converts through no pair
    by_day = {r[0]: r[1] for r in rows(main)}
    assert by_day[day(5)] == 10 * D(50) * D("1.20")
    assert by_day[day(6)] == 10 * D(50) * D("1.10")


def test_a_position_with_no_close_is_counted_unpriced_and_left_out(main):
    closes("AAPL", {4: "100", 0: "100"})
    closes("NEWCO", {})
    buy(main, "AAPL", "1", "100", 4)
    buy(main, "NEWCO", "1", "10", 4)
    daily_values_derive(portfolio_id=main.pk, since=date(2000, 1, 1), today=TODAY)
    first = rows(main)[0]
    assert (first[1], first[7]) == (D(100), 1)
    assert first[3] == D(110)  # the cost still counts


def test_a_rerun_of_the_derivation_changes_nothing(main):
    closes("AAPL", {4: "100", 2: "101", 0: "102"})
    buy(main, "AAPL", "3", "100", 4)
    daily_values_derive(portfolio_id=main.pk, since=date(2000, 1, 1), today=TODAY)
    once = rows(main)
    assert daily_values_derive(portfolio_id=main.pk, since=day(4), today=TODAY) == 5
    assert rows(main) == once


@postgresql_only
def test_the_portable_close_reader_agrees_with_the_postgresql_one():
    from backend.performance.sql import _closes_portable, _closes_postgresql

    closes("AAPL", {9: "100", 6: "104", 5: "103", 1: "110"})
    closes("KO", {3: "60"})
    ids = sorted(Asset.objects.values_list("pk", flat=True))
    expected = _closes_postgresql(ids, day(8), day(1))
    assert expected[ids[0]][day(8)] == D(100)  # carried from the day before the first
    assert _closes_portable(ids, day(8), day(1)) == expected
