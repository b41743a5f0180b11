from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from backend.market.models import Asset
from backend.portfolios.models import Portfolio, Position

pytestmark = pytest.mark.django_db


@pytest.fixture
def portfolio() -> Portfolio:
    return Portfolio.objects.create(owner=User.objects.create(username="ann"), name="Main")


def test_position_keeps_fractional_quantity_and_cost_exactly(portfolio):
    btc = Asset.objects.create(symbol="BTC-USD")
    Position.objects.create(
        portfolio=portfolio, asset=btc, quantity=Decimal("0.0012345678"), average_cost=Decimal("43150.123456")
    )
    position = Position.objects.get()
    assert position.quantity == Decimal("0.0012345678")
    assert position.average_cost == Decimal("43150.123456")


def test_portfolio_holds_one_position_per_asset(portfolio):
    asset = Asset.objects.create(symbol="MSFT")
    Position.objects.create(portfolio=portfolio, asset=asset, quantity=1, average_cost=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Position.objects.create(portfolio=portfolio, asset=asset, quantity=2, average_cost=1)


@pytest.mark.parametrize(
    ("quantity", "cost"),
    [(Decimal("-1"), Decimal("1")), (Decimal("1"), Decimal("-0.01"))],
)
def test_position_refuses_negative_quantity_and_negative_cost(portfolio, quantity, cost):
    # 0 is allowed: a position sold down to nothing stays, with its realized figures.
    asset = Asset.objects.create(symbol="KO")
    with pytest.raises(IntegrityError), transaction.atomic():
        Position.objects.create(portfolio=portfolio, asset=asset, quantity=quantity, average_cost=cost)
