"""twr and xirr on flows worked by hand (the expected figures are computed here, from the
definitions, not by the functions under test)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from backend.performance.returns import twr, xirr

D = Decimal
START = date(2025, 1, 1)


def test_twr_chains_the_daily_returns():
    # 100 -> 110 (+10 %), then 50 put in and the day ends at 176: (176 - 50) / 110 - 1
    got = twr(start_value=D(100), days=[(D(110), D(0)), (D(176), D(50))])
    expected = D(110) / D(100) * (D(126) / D(110)) - 1
    assert got == expected
    assert round(got * 100, 2) == D("26.00")


def test_twr_skips_days_starting_from_nothing_instead_of_falling_to_minus_100():
    # bought at 100, sold everything at 120 (value 0, 120 out), two empty days, re-bought at
    # 90 and the day after worth 99
    days = [(D(0), D(-120)), (D(0), D(0)), (D(0), D(0)), (D(90), D(90)), (D(99), D(0))]
    got = twr(start_value=D(100), days=days)
    assert got == D("1.2") * D("1.1") - 1
    assert got > -1


def test_xirr_of_one_year_is_the_simple_return():
    got = xirr([(START, D(-100)), (START + timedelta(days=365), D(110))])
    assert got is not None
    assert abs(got - D("0.1")) < D("1e-9")


def test_xirr_annualises_a_half_year():
    days = 182
    got = xirr([(START, D(-1000)), (START + timedelta(days=days), D(1050))])
    expected = (1050 / 1000) ** (365 / days) - 1
    assert got is not None
    assert abs(float(got) - expected) < 1e-9


def test_xirr_with_a_flow_in_the_middle_sets_the_present_value_to_zero():
    flows = [(START, D(-1000)), (START + timedelta(days=100), D(-500)), (START + timedelta(days=400), D(1700))]
    got = xirr(flows)
    assert got is not None
    rate = float(got)
    present = sum(float(a) / (1 + rate) ** ((d - START).days / 365) for d, a in flows)
    assert abs(present) < 1e-6


def test_xirr_of_a_near_total_loss_is_close_to_minus_100_percent():
    got = xirr([(START, D(-100)), (START + timedelta(days=365), D("0.1"))])
    assert got is not None
    assert abs(got - (D("0.1") / D(100) - 1)) < D("1e-9")


@pytest.mark.parametrize(
    "flows",
    [
        [(START, D(-100)), (START + timedelta(days=30), D(-50))],  # money only ever put in
        [(START, D(100))],
        [],
        # -100 + 250 v - 200 v^2 < 0 for every v = (1 + r)^-1: no rate gives 0
        [(START, D(-100)), (START + timedelta(days=365), D(250)), (START + timedelta(days=730), D(-200))],
    ],
)
def test_xirr_without_a_root_is_none(flows):
    assert xirr(flows) is None
