"""Daily closes, quotes and ledgers written as the pipeline and the ledger services write
them, on fixed UTC days (TODAY is passed explicitly: nothing reads the clock)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User

from backend.market.models import Asset, PriceHistory, Quote
from backend.performance.services.rederive import PENDING, PROCESSING, SCHEDULED
from backend.portfolios.models import Portfolio
from tests.backend.portfolios.conftest import ann, bob  # noqa: F401 (fixtures)

TODAY = date(2026, 3, 20)
D = Decimal


def day(n: int) -> date:
    """The day n days before TODAY."""
    return TODAY - timedelta(days=n)


def at(n: int, hour: int = 15) -> datetime:
    return datetime.combine(day(n), time(hour), tzinfo=UTC)


def asset(symbol: str, currency: str = "USD") -> Asset:
    row, _ = Asset.objects.get_or_create(
        symbol=symbol,
        defaults={"currency": currency, "currency_locked": True, "tracking_status": Asset.TrackingStatus.TRACKED},
    )
    return row


def closes(symbol: str, prices: dict[int, str], currency: str = "USD") -> None:
    """Closes on the days n before TODAY (an intraday row earlier the same day too, which the
    close must not take); TODAY's price becomes the latest quote."""
    row = asset(symbol, currency)
    for n, price in prices.items():
        if n == 0:
            Quote.objects.update_or_create(
                asset=row,
                defaults={"price": D(price), "source": "test", "quoted_at": at(0), "fetched_at": at(0)},
            )
            continue
        PriceHistory.objects.create(asset=row, quoted_at=at(n, 14), price=D(price) * 3, source="test")
        PriceHistory.objects.create(asset=row, quoted_at=at(n, 21), price=D(price), source="test")


@pytest.fixture(autouse=True)
def no_pending_rederivations() -> Iterator[None]:
    # A "runner scheduled" mark left behind would hold back the next test's runner.
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(PENDING, PROCESSING, SCHEDULED)
    yield
    client.delete(PENDING, PROCESSING, SCHEDULED)
    client.close()


@pytest.fixture
def main(ann: User) -> Portfolio:  # noqa: F811
    return Portfolio.objects.create(owner=ann, name="Main")
