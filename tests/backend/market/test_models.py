from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import DataError, IntegrityError, transaction

from backend.market.models import Asset, PriceHistory, Quote

pytestmark = pytest.mark.django_db
AT = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


@pytest.fixture
def asset() -> Asset:
    return Asset.objects.create(symbol="AAPL", name="Apple")


def test_history_refuses_a_second_row_for_the_same_asset_and_time(asset):
    PriceHistory.objects.create(asset=asset, quoted_at=AT, price=Decimal("190.12"), source="yahoo")
    with pytest.raises(IntegrityError), transaction.atomic():
        PriceHistory.objects.create(asset=asset, quoted_at=AT, price=Decimal("190.13"), source="finnhub")
    assert PriceHistory.objects.get(asset=asset).price == Decimal("190.12")


def test_quote_keeps_decimal_precision_to_six_places(asset):
    Quote.objects.create(
        asset=asset, price=Decimal("123456.123456"), change=Decimal("-0.000001"), source="yahoo",
        quoted_at=AT, fetched_at=AT,
    )  # fmt: skip
    quote = Quote.objects.get(asset=asset)
    assert quote.price == Decimal("123456.123456")
    assert isinstance(quote.price, Decimal)
    assert quote.change == Decimal("-0.000001")


@pytest.mark.parametrize("price", [Decimal("0"), Decimal("-1.5")])
def test_quote_refuses_a_price_that_is_not_positive(asset, price):
    with pytest.raises(IntegrityError), transaction.atomic():
        Quote.objects.create(asset=asset, price=price, source="yahoo", quoted_at=AT, fetched_at=AT)


@pytest.mark.parametrize("symbol", ["aapl", "", "TOO-LONG-SYMBOL-123456", "A B", "AAPL;"])
def test_asset_refuses_a_malformed_symbol(symbol):
    # PostgreSQL refuses an over-long value as DataError, SQLite through the check constraint.
    with pytest.raises((IntegrityError, DataError)), transaction.atomic():
        Asset.objects.create(symbol=symbol)


@pytest.mark.parametrize("symbol", ["^GSPC", "BTC-USD", "BRK.B", "BRK/B", "EURUSD=X"])
def test_asset_accepts_every_symbol_shape_of_the_contract(symbol):
    assert Asset.objects.create(symbol=symbol).pk
