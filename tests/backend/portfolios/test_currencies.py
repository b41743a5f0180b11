"""Valuation in the base currency, to the cent, on whichever database runs the suite
(PostgreSQL's one-statement pass or SQLite's ORM pass): euros and pence into dollars, pence
into pounds, a position whose pair has no rate yet left out, and a pair's move revaluing
exactly the portfolios it converts."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import pytest

from backend.portfolios.models import Portfolio
from backend.portfolios.selectors import portfolios_read
from backend.portfolios.services.revaluation import (
    Audience,
    portfolios_holding,
    portfolios_revalue,
    portfolios_revalue_for_symbols,
)
from backend.portfolios.services.transactions import transaction_buy
from backend.realtime.payloads import to_wire

from .conftest import quote_set

pytestmark = pytest.mark.django_db
D = Decimal
T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def cents(value: Decimal | None) -> Decimal:
    assert value is not None
    return value.quantize(D("0.01"), rounding=ROUND_HALF_EVEN)


@pytest.fixture
def world(ann) -> dict[str, Portfolio]:
    quote_set("SAP.DE", "160.00", "158.00")
    quote_set("EURUSD=X", "1.100000", "1.080000")
    quote_set("VOD.L", "72.00", "71.00")  # pence
    quote_set("GBPUSD=X", "1.250000", "1.260000")
    quote_set("AAPL", "120.00", "118.00")
    quote_set("7203.T", "2500", "2490")  # JPYUSD=X has no quote: no rate
    dollars = Portfolio.objects.create(owner=ann, name="Dollars")
    transaction_buy(portfolio=dollars, symbol="SAP.DE", quantity=D(10), price=D(150), fx_rate=D("1.05"))
    transaction_buy(portfolio=dollars, symbol="VOD.L", quantity=D(1000), price=D(70), fx_rate=D("0.0126"))
    transaction_buy(portfolio=dollars, symbol="AAPL", quantity=D(2), price=D(100))
    transaction_buy(portfolio=dollars, symbol="7203.T", quantity=D(100), price=D(2400), fx_rate=D("0.0067"))
    pounds = Portfolio.objects.create(owner=ann, name="Pounds", base_currency="GBP")
    transaction_buy(portfolio=pounds, symbol="VOD.L", quantity=D(100), price=D(70))  # fx 0.01: no pair
    return {"dollars": dollars, "pounds": pounds}


def stored(portfolio: Portfolio) -> tuple[Decimal, ...]:
    portfolio.refresh_from_db()
    figures = (portfolio.total_value, portfolio.total_cost, portfolio.daily_change)
    ratios = (portfolio.daily_change_percent, portfolio.total_return, portfolio.total_return_percent)
    return tuple(cents(f) for f in (*figures, *ratios))


def test_positions_value_in_the_base_currency_to_the_cent(world):
    dollars, pounds = world["dollars"], world["pounds"]
    portfolios_revalue(portfolio_ids=[dollars.pk, pounds.pk], now=T0, audience=Audience.EVERYONE)
    # SAP 10 * 160 * 1.10 = 1760 (change 10 * (176 - 158 * 1.08) = 53.60), cost 1575;
    # VOD 1000 * 72 * 0.0125 = 900 (change 1000 * (0.9 - 0.71 * 1.26) = 5.40), cost 882;
    # AAPL 240 (+4), cost 200; Toyota unpriced (no JPYUSD=X rate): left out.
    # 2900 - 2657 = 243; 63 / 2837 * 100 = 2.2206...; 243 / 2657 * 100 = 9.1456...
    assert stored(dollars) == (D(2900), D(2657), D(63), D("2.22"), D(243), D("9.15"))
    # 100 * 72 pence = 72 pounds (change 1), cost 70.
    assert stored(pounds) == (D(72), D(70), D(1), D("1.41"), D(2), D("2.86"))
    (read,) = to_wire(portfolios_read(owner_id=dollars.owner_id, portfolio_id=dollars.pk))
    assert (read["currency"], read["unpriced_positions"], read["total_value"]) == ("USD", 1, 2900.0)
    by_symbol = {p["symbol"]: p for p in read["positions"]}
    assert by_symbol["VOD.L"]["currency"] == "GBp"
    assert by_symbol["VOD.L"]["fx_rate"] == 0.0125
    assert by_symbol["VOD.L"]["current_value"] == 900.0
    assert by_symbol["VOD.L"]["cost_basis"] == 882.0
    assert by_symbol["7203.T"]["priced"] is False
    assert by_symbol["7203.T"]["fx_rate"] is None


def test_a_pair_move_revalues_exactly_the_portfolios_it_converts(world):
    dollars, pounds = world["dollars"], world["pounds"]
    assert portfolios_holding(symbols=["GBPUSD=X"]) == [dollars.pk]
    assert portfolios_holding(symbols=["VOD.L"]) == sorted([dollars.pk, pounds.pk])
    portfolios_revalue(portfolio_ids=[dollars.pk, pounds.pk], now=T0, audience=Audience.EVERYONE)
    quote_set("GBPUSD=X", "1.300000", "1.260000")
    result = portfolios_revalue_for_symbols(symbols=["GBPUSD=X"], audience=Audience.EVERYONE)
    assert (result.portfolios_revalued, result.portfolios_changed) == (1, 1)
    (update,) = [e for e in result.events if e["type"] == "portfolio_update"]
    assert update["data"]["portfolio_id"] == dollars.pk
    assert update["data"]["total_value"] == 2936.0  # VOD 1000 * 72 * 0.013 = 936
    assert update["data"]["currency"] == "USD"
    assert update["data"]["unpriced_positions"] == 1
    assert [p["symbol"] for p in update["data"]["positions_updated"]] == ["VOD.L"]  # its rate moved
    (moved,) = [e for e in result.events if e["type"] == "position_update"]
    assert moved["data"]["significant_change"] is True  # 0.9 -> 0.936 a share in dollars: +4 %
    assert (moved["data"]["currency"], moved["data"]["fx_rate"]) == ("GBp", 0.013)
