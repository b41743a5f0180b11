"""Valuation figures against numbers computed by hand (with bc), to the cent."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from django.db import connection

from backend.portfolios.models import Portfolio, Position
from backend.portfolios.position_valuation import position_valuations
from backend.portfolios.valuation import figures_derive, portfolio_sums, portfolio_valuations

from .conftest import hold, previously_valued_at

pytestmark = pytest.mark.django_db


def cents(value: Decimal | None) -> str:
    assert value is not None
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))


def figures_in_cents(portfolio: Portfolio) -> dict[str, str | int]:
    (valuation,) = portfolio_valuations(portfolios=Portfolio.objects.filter(pk=portfolio.pk))
    f = valuation.figures
    return {
        "total_value": cents(f.total_value),
        "total_cost": cents(f.total_cost),
        "daily_change": cents(f.daily_change),
        "daily_change_percent": cents(f.daily_change_percent),
        "total_return": cents(f.total_return),
        "total_return_percent": cents(f.total_return_percent),
        "unpriced": valuation.unpriced,
    }


def test_gains_portfolio_with_fractional_crypto_and_a_quote_without_previous_close(three_portfolios):
    # AAPL 10*190.50=1905.00 (+25.00), NVDA 3*880=2640.00 (no previous close: +0),
    # BTC 0.5*64250.123456=32125.061728 (+625.061728); cost 1500+1200+15000.
    assert figures_in_cents(three_portfolios["gains"]) == {
        "total_value": "36670.06",
        "total_cost": "17700.00",
        "daily_change": "650.06",
        "daily_change_percent": "1.80",  # 650.061728 / 36020 * 100 = 1.8047...
        "total_return": "18970.06",
        "total_return_percent": "107.18",  # 18970.061728 / 17700 * 100 = 107.1754...
        "unpriced": 0,
    }


def test_loss_portfolio_leaves_out_the_unquoted_position_and_counts_a_zero_cost_one(three_portfolios):
    # MSFT 20*410.25=8205.00 (-110.00), AAPL 2.5*190.50=476.25 (+6.25, cost 0), NEWCO no quote.
    assert figures_in_cents(three_portfolios["loss"]) == {
        "total_value": "8681.25",
        "total_cost": "9000.00",
        "daily_change": "-103.75",
        "daily_change_percent": "-1.18",  # -103.75 / 8785 * 100 = -1.18099...
        "total_return": "-318.75",
        "total_return_percent": "-3.54",  # -318.75 / 9000 * 100 = -3.5416...
        "unpriced": 1,
    }


def test_large_portfolio_is_right_to_the_cent(three_portfolios):
    # BRK-A 1500*612345.67 = 918518505.00 (+3518505.00), cost 600000000;
    # BTC 12.34567891*64250.123456 = 793211.39411563551296 (+15433.62278563551296),
    # cost 12.34567891*25000.50 = 308648.145589455.
    assert figures_in_cents(three_portfolios["large"]) == {
        "total_value": "919311716.39",
        "total_cost": "600308648.15",
        "daily_change": "3533938.62",
        "daily_change_percent": "0.39",  # 3533938.6227... / 915777777.77... * 100 = 0.38589...
        "total_return": "319003068.25",
        "total_return_percent": "53.14",  # 53.1398...
        "unpriced": 0,
    }


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite computes in binary floats")
def test_sums_are_exact_decimals_on_postgresql(three_portfolios):
    (valuation,) = portfolio_valuations(portfolios=Portfolio.objects.filter(pk=three_portfolios["large"].pk))
    assert valuation.figures.total_value == Decimal("919311716.39411563551296")
    assert valuation.figures.daily_change == Decimal("3533938.62278563551296")
    assert valuation.figures.total_cost == Decimal("600308648.1455894550")
    assert valuation.figures.total_return == Decimal("319003068.24852618051296")


def test_one_aggregation_query_sums_many_portfolios(three_portfolios, django_assert_num_queries):
    ids = [p.pk for p in three_portfolios.values()]
    with django_assert_num_queries(1):
        sums = portfolio_sums(portfolio_ids=ids)
    assert [cents(sums[pk].total_value) for pk in ids] == ["36670.06", "8681.25", "919311716.39"]
    with django_assert_num_queries(2):  # the portfolios' own rows, then the same aggregation
        valuations = portfolio_valuations(portfolios=Portfolio.objects.filter(pk__in=ids))
    assert [v.portfolio_id for v in valuations] == sorted(ids)


def test_zero_divisors_give_zero_percentages(market, ann):
    gift = Portfolio.objects.create(owner=ann, name="Gift")
    hold(gift, "NVDA", "2", "0")  # zero cost: total_return / 0 -> 0
    empty = Portfolio.objects.create(owner=ann, name="Empty")
    pending = Portfolio.objects.create(owner=ann, name="Pending")
    hold(pending, "NEWCO", "1", "5")
    assert figures_in_cents(gift)["total_return_percent"] == "0.00"
    assert figures_in_cents(gift)["total_return"] == "1760.00"
    for portfolio in (empty, pending):
        figures = figures_in_cents(portfolio)
        assert set(figures.values()) == {"0.00", figures["unpriced"]}
    assert figures_in_cents(pending)["unpriced"] == 1


def test_daily_change_percent_is_zero_when_the_whole_value_is_todays_change():
    figures = figures_derive(total_value=Decimal("10"), daily_change=Decimal("10"), total_cost=Decimal("4"))
    assert figures.daily_change_percent == 0
    assert figures.total_return_percent == Decimal("150")


def test_position_figures_and_moved_flag(three_portfolios):
    previously_valued_at(three_portfolios["gains"], {"BTC-USD": "64250.123456"})
    rows = position_valuations(positions=Position.objects.filter(portfolio=three_portfolios["gains"]))
    by_symbol = {p.symbol: p for p in rows}
    btc = by_symbol["BTC-USD"]
    assert cents(btc.current_value) == "32125.06"
    assert cents(btc.daily_change) == "625.06"
    assert cents(btc.total_return) == "17125.06"
    assert cents(btc.total_return_percent) == "114.17"  # 17125.061728 / 15000 * 100
    assert not btc.price_moved
    assert by_symbol["AAPL"].price_moved
    moved = position_valuations(positions=Position.objects.filter(portfolio=three_portfolios["gains"]), moved_only=True)
    assert [p.symbol for p in moved] == ["AAPL", "NVDA"]
    unpriced = position_valuations(positions=Position.objects.filter(asset__symbol="NEWCO"))
    assert unpriced[0].current_price is None
    assert not unpriced[0].priced
