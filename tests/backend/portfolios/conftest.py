from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from backend.market.models import Asset, Quote
from backend.portfolios.models import Portfolio, Position, ValuationEpoch, ValuedPrice

QUOTED_AT = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)


def quote_set(symbol: str, price: str, previous_close: str | None = None) -> Quote:
    asset, _ = Asset.objects.get_or_create(symbol=symbol)
    quote, _ = Quote.objects.update_or_create(
        asset=asset,
        defaults={
            "price": Decimal(price),
            "previous_close": Decimal(previous_close) if previous_close is not None else None,
            "source": "test",
            "quoted_at": QUOTED_AT,
            "fetched_at": QUOTED_AT,
        },
    )
    return quote


def hold(portfolio: Portfolio, symbol: str, quantity: str, average_cost: str) -> Position:
    asset, _ = Asset.objects.get_or_create(symbol=symbol)
    return Position.objects.create(
        portfolio=portfolio, asset=asset, quantity=Decimal(quantity), average_cost=Decimal(average_cost)
    )


def previously_valued_at(portfolio: Portfolio, prices: dict[str, str]) -> None:
    """As if the portfolio's previous valuation priced these symbols' positions at `prices`."""
    epoch = ValuationEpoch.objects.create(created_at=QUOTED_AT)
    for symbol, price in prices.items():
        ValuedPrice.objects.create(epoch=epoch, asset=Asset.objects.get(symbol=symbol), price=Decimal(price))
    Portfolio.objects.filter(pk=portfolio.pk).update(valued_epoch=epoch.pk)
    Position.objects.filter(portfolio=portfolio, asset__symbol__in=list(prices)).update(valued=True)


@pytest.fixture
def market() -> None:
    """Latest quotes; NEWCO is tracked but has no quote yet."""
    quote_set("AAPL", "190.50", "188.00")
    quote_set("MSFT", "410.25", "415.75")
    quote_set("BTC-USD", "64250.123456", "63000.000000")
    quote_set("NVDA", "880.00")  # no previous close: no change today
    quote_set("BRK-A", "612345.67", "610000.00")
    quote_set("KO", "60.00", "59.00")
    Asset.objects.create(symbol="NEWCO")


@pytest.fixture
def ann() -> User:
    return User.objects.create_user("ann", password="pw-ann-123")


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password="pw-bob-123")


@pytest.fixture
def three_portfolios(market: None, ann: User, bob: User) -> dict[str, Portfolio]:
    gains = Portfolio.objects.create(owner=ann, name="Gains")
    hold(gains, "AAPL", "10", "150.00")
    hold(gains, "NVDA", "3", "400.00")
    hold(gains, "BTC-USD", "0.5", "30000.00")
    loss = Portfolio.objects.create(owner=ann, name="Loss")
    hold(loss, "MSFT", "20", "450.00")
    hold(loss, "NEWCO", "5", "10.00")  # no quote yet: left out of the totals
    hold(loss, "AAPL", "2.5", "0")  # a gift: zero cost
    large = Portfolio.objects.create(owner=bob, name="Large")
    hold(large, "BRK-A", "1500", "400000.00")
    hold(large, "BTC-USD", "12.34567891", "25000.50")
    return {"gains": gains, "loss": loss, "large": large}


@pytest.fixture(autouse=True)
def everyone_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unless a test says otherwise, every portfolio has a live subscriber and every owner a
    live connection, so every event is built (the audience tests use the real registry)."""
    from backend.portfolios.services import revaluation

    monkeypatch.setattr(revaluation, "audience_live", lambda: revaluation.Audience.EVERYONE)
