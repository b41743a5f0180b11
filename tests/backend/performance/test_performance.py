"""A portfolio's returns over daily values derived from its ledger and the stored closes,
each against figures worked by hand from the closes and the trades."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backend.performance.models import DailyValue

from .conftest import TODAY, closes, day
from .helpers import D, buy, dividend, percent, performance, rate_solving, sell, split

pytestmark = pytest.mark.django_db


def test_without_flows_the_twr_is_the_price_move_and_the_irr_its_yearly_rate(main):
    closes("AAPL", {365: "100", 100: "90", 1: "108", 0: "110"})
    buy(main, "AAPL", "10", "100", 365)
    got = performance(main)
    assert percent(got.twr) == percent(D(110) / D(100) - 1) == D("10.00")
    assert percent(got.irr) == percent((1100 / 1000) ** (365 / 365) - 1)
    assert (got.start, got.start_value, got.end_value) == (day(366), 0, D(1100))
    assert got.net_flows == D(1000)
    assert got.unrealized_gain == D(1100) - D(1000)
    values = {d.date: d.value for d in got.series}
    assert values[day(100)] == values[day(2)] == D(900)  # a day without a close keeps the last one


def test_a_second_buy_at_another_price_leaves_the_twr_and_moves_the_irr(main, ann):
    closes("AAPL", {365: "100", 100: "90", 1: "108", 0: "110"})
    buy(main, "AAPL", "10", "100", 365)
    other = main.__class__.objects.create(owner=ann, name="Other")
    buy(other, "AAPL", "10", "100", 365)
    buy(other, "AAPL", "10", "90", 100)  # at that day's close
    once, twice = performance(main), performance(other)
    assert percent(twice.twr) == percent(once.twr) == D("10.00")
    expected = rate_solving([(day(365), -1000.0), (day(100), -900.0), (TODAY, 2200.0)])
    assert percent(twice.irr) == percent(expected)
    assert percent(twice.irr) != percent(once.irr)


def test_a_full_sell_and_a_rebuy_chain_on_instead_of_falling_to_minus_100(main):
    closes("AAPL", {10: "100", 9: "110", 8: "120", 7: "80", 5: "130", 4: "90", 3: "99", 0: "99"})
    buy(main, "AAPL", "10", "100", 10)
    sell(main, "AAPL", "10", "120", 8)
    buy(main, "AAPL", "5", "90", 4)
    got = performance(main)
    assert percent(got.twr) == percent(D("1.2") * D("1.1") - 1) == D("32.00")
    assert [d.value for d in got.series if day(8) <= d.date <= day(5)] == [0, 0, 0, 0]
    assert got.realized_gain == D(1200) - D(1000)
    week = performance(main, "1w")  # starts on an empty day: the re-buy is where it begins
    assert week.start_value == 0
    assert percent(week.twr) == percent(D(99) / D(90) - 1)


def test_a_dividend_is_money_out_that_counts_as_return(main):
    closes("KO", {3: "100", 2: "100", 1: "100", 0: "100"})
    buy(main, "KO", "10", "100", 3)
    dividend(main, "KO", "50", 2)
    got = performance(main)
    assert percent(got.twr) == percent((D(1000) + D(50)) / D(1000) - 1) == D("5.00")
    assert got.dividends == D(50)
    assert got.net_flows == D(1000) - D(50)


def test_a_split_is_no_flow_and_keeps_the_value_continuous(main):
    closes("NVDA", {3: "100", 2: "52", 0: "52"})
    buy(main, "NVDA", "10", "100", 3)
    split(main, "NVDA", "2:1", 2)
    got = performance(main)
    assert percent(got.twr) == percent(D(20) * D(52) / D(1000) - 1) == D("4.00")
    assert got.net_flows == D(1000)


def test_a_foreign_holding_moves_with_its_pair_when_its_price_does_not(main):
    closes("SAP.DE", {3: "100", 2: "100", 0: "100"}, currency="EUR")
    closes("EURUSD=X", {3: "1.10", 2: "1.21", 0: "1.21"})
    closes("VOD.L", {3: "200", 2: "200", 0: "200"}, currency="GBp")
    closes("GBPUSD=X", {3: "1.25", 2: "1.30", 0: "1.30"})
    buy(main, "SAP.DE", "10", "100", 3, fx_rate=D("1.10"))
    buy(main, "VOD.L", "100", "200", 3, fx_rate=D("0.0125"))  # pence: 1.25 / 100
    got = performance(main)
    start = 10 * 100 * D("1.10") + 100 * 200 * D("1.25") / 100
    end = 10 * 100 * D("1.21") + 100 * 200 * D("1.30") / 100
    assert got.end_value == end
    assert percent(got.twr) == percent(end / start - 1)
    assert got.currency == "USD"


def test_a_range_starting_before_the_first_transaction_starts_from_nothing(main):
    closes("AAPL", {5: "100", 2: "105", 0: "110"})
    buy(main, "AAPL", "10", "100", 5)
    got = performance(main, "1m")
    assert got.start == TODAY.replace(month=TODAY.month - 1)
    assert got.start_value == 0
    assert got.series[0].date == day(5)
    assert percent(got.twr) == percent(D(110) / D(100) - 1)
    assert got.net_flows == D(1000)


def test_a_range_inside_the_history_starts_from_that_days_value(main):
    closes("AAPL", {40: "100", 7: "120", 0: "126"})
    buy(main, "AAPL", "10", "100", 40)
    got = performance(main, "1w")
    assert (got.start, got.start_value) == (day(7), D(1200))
    assert percent(got.twr) == percent(D(126) / D(120) - 1) == D("5.00")
    assert got.net_flows == 0
    assert percent(got.irr) == percent((1260 / 1200) ** (365 / 7) - 1)


def test_no_transactions_gives_an_empty_range_without_a_rate(main):
    got = performance(main)
    assert (got.start_value, got.end_value, got.twr, got.irr, got.series) == (0, 0, 0, None, [])
    assert not DailyValue.objects.filter(portfolio=main).exists()


def test_money_is_kept_at_full_precision_until_sent(main):
    closes("AAPL", {2: "100.123456", 0: "100.123456"})
    buy(main, "AAPL", "0.3333333333", "100.123456", 2)
    performance(main)
    row = DailyValue.objects.get(portfolio=main, date=day(2))
    assert row.value == (Decimal("0.3333333333") * Decimal("100.123456")).quantize(Decimal("1e-10"))
    assert row.value != round(row.value, 2)


def test_today_without_a_quote_yet_is_valued_at_the_last_close_not_at_zero(main):
    """After a history backfill and before the first fetch (a fresh `make run`) there is no
    quote: today keeps yesterday's close instead of falling to -100 %."""
    closes("AAPL", {30: "100", 1: "120"})  # no quote for TODAY
    buy(main, "AAPL", "10", "100", 30)
    got = performance(main)
    assert got.end_value == D(1200)
    assert percent(got.twr) == D("20.00")
    assert got.unrealized_gain == D(200)
