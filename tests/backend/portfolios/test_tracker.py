"""The PortfolioTracker calls for scripts, with hand-computed figures."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backend.market.models import Quote
from backend.portfolios.models import Portfolio, PortfolioSnapshot, Position
from backend.portfolios.tracker import PortfolioTracker, update_portfolio_values, update_position_value

pytestmark = pytest.mark.django_db
CENT = Decimal("0.01")


def test_update_portfolio_values_uses_the_prices_handed_in_and_reports_value_changed(three_portfolios):
    loss = three_portfolios["loss"]
    tracker = PortfolioTracker()
    tracker.start_tracking_portfolio(loss)
    updated = tracker.update_portfolio_values(loss, {"MSFT": Decimal("400.00"), "newco": "12"})
    # MSFT 20*400 = 8000 (-315), AAPL 2.5*190.50 = 476.25 (+6.25), NEWCO 5*12 = 60 (no quote: +0)
    assert updated["total_value"].quantize(CENT) == Decimal("8536.25")
    assert updated["daily_change"].quantize(CENT) == Decimal("-308.75")
    assert updated["daily_change_percent"].quantize(CENT) == Decimal("-3.49")  # -308.75 / 8845 * 100
    assert updated["value_changed"] is True
    assert {p["symbol"] for p in updated["positions_updated"]} == {"AAPL", "MSFT", "NEWCO"}
    assert PortfolioSnapshot.objects.filter(portfolio=loss).count() == 1
    again = update_portfolio_values(loss, {"MSFT": Decimal("400.00"), "NEWCO": Decimal("12")})
    assert again["value_changed"] is False
    assert again["positions_updated"] == []
    assert again["total_value"].quantize(CENT) == Decimal("8536.25")


def test_update_position_value_flags_a_move_over_one_percent(three_portfolios):
    gains = three_portfolios["gains"]
    update_portfolio_values(gains, {})  # first valuation at the quotes: AAPL at 190.50
    aapl = Position.objects.select_related("asset").get(portfolio=gains, asset__symbol="AAPL")
    moved = update_position_value(aapl, new_price=Decimal("194.31"))  # +2.0 %
    assert moved["current_price"] == Decimal("194.31")
    assert moved["current_value"].quantize(CENT) == Decimal("1943.10")
    assert moved["daily_change"].quantize(CENT) == Decimal("63.10")  # 10 * (194.31 - 188.00)
    assert moved["total_return"].quantize(CENT) == Decimal("443.10")
    assert moved["total_return_percent"].quantize(CENT) == Decimal("29.54")  # 443.10 / 1500 * 100
    assert moved["significant_change"] is True
    small = update_position_value(aapl, new_price=Decimal("195.00"))  # +0.36 % from 194.31
    assert small["significant_change"] is False
    same = update_position_value(aapl, new_price=Decimal("195.00"))
    assert same["significant_change"] is False
    assert same["current_value"].quantize(CENT) == Decimal("1950.00")
    assert Portfolio.objects.get(pk=gains.pk).total_value is not None


def test_the_prices_handed_in_are_revalued_at_and_the_quotes_left_as_they_were(three_portfolios):
    loss = three_portfolios["loss"]
    quotes = sorted(Quote.objects.values_list("asset__symbol", "price", "previous_close", "source", "fetched_at"))
    updated = update_portfolio_values(loss, {"MSFT": Decimal("400.00"), "NEWCO": Decimal("12.00")})
    # MSFT 20*400 = 8000 (-315.00), AAPL 476.25 (+6.25), NEWCO 5*12 = 60 (no quote: no change).
    assert updated["total_value"].quantize(CENT) == Decimal("8536.25")
    assert updated["daily_change"].quantize(CENT) == Decimal("-308.75")
    assert updated["total_cost"].quantize(CENT) == Decimal("9050.00")
    loss.refresh_from_db()
    assert loss.total_value is not None
    assert loss.total_value.quantize(CENT) == Decimal("8536.25")  # stored at those prices
    # ... which existed only inside the tracker's transaction.
    assert sorted(Quote.objects.values_list("asset__symbol", "price", "previous_close", "source", "fetched_at")) == (
        quotes
    )
    newco = Position.objects.get(portfolio=loss, asset__symbol="NEWCO")
    assert newco.last_valued_price == Decimal("12.00")  # the price of this revaluation
