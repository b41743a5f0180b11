"""What the dashboard shows on the `make run` demo: the demo user's portfolios, priced and
valued as the pipeline and valuation would leave them (written directly: these tests are
about the browser, not the pipeline)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.models import User
from django.utils import timezone

from backend.market.models import Asset, PriceHistory, Quote
from backend.portfolios.demo import demo_data_seed
from backend.portfolios.models import Portfolio, PortfolioSnapshot
from backend.realtime.payloads import AssetUpdate, PortfolioUpdate, PositionUpdate

DEMO_PASSWORD = "demo"


@dataclass(frozen=True)
class Demo:
    user_id: int
    growth_id: int
    income_id: int


def demo_priced() -> Demo:
    demo_data_seed(with_logins=True)
    now = timezone.now()
    for n, asset in enumerate(Asset.objects.all()):
        price = Decimal(100 + 7 * n)
        Quote.objects.update_or_create(
            asset=asset,
            defaults={
                "price": price, "previous_close": price - 1, "change": Decimal(1),
                "change_percent": Decimal(1) / (price - 1) * 100, "source": "simulated",
                "quoted_at": now, "fetched_at": now,
            },
        )  # fmt: skip
        PriceHistory.objects.bulk_create(
            PriceHistory(asset=asset, quoted_at=now - timedelta(minutes=30 - i), price=price + (i % 5) - 2,
                         source="simulated")
            for i in range(30)
        )  # fmt: skip
        asset.tracking_status = Asset.TrackingStatus.TRACKED
        asset.save(update_fields=["tracking_status"])
    for portfolio in Portfolio.objects.all():
        value = cost = daily = Decimal(0)
        for position in portfolio.positions.select_related("asset__quote"):
            quote = position.asset.quote
            value += position.quantity * quote.price
            cost += position.quantity * position.average_cost
            daily += position.quantity * (quote.price - (quote.previous_close or quote.price))
        Portfolio.objects.filter(pk=portfolio.pk).update(
            total_value=value, total_cost=cost, daily_change=daily,
            daily_change_percent=daily / (value - daily) * 100, total_return=value - cost,
            total_return_percent=(value - cost) / cost * 100, valued_at=now,
        )  # fmt: skip
        PortfolioSnapshot.objects.bulk_create(
            PortfolioSnapshot(portfolio=portfolio, valued_at=now - timedelta(minutes=40 - i),
                              total_value=value * (1 + Decimal(i % 7 - 3) / 100), total_cost=cost, daily_change=daily)
            for i in range(40)
        )  # fmt: skip
    user = User.objects.get(username="demo")
    return Demo(
        user_id=user.pk,
        growth_id=Portfolio.objects.get(owner=user, name="Growth").pk,
        income_id=Portfolio.objects.get(owner=user, name="Income & Crypto").pk,
    )


def asset_update(symbol: str, price: str) -> AssetUpdate:
    p = Decimal(price)
    previous = p - 1
    return {
        "symbol": symbol, "price": p, "change": Decimal(1), "change_percent": Decimal(1) / previous * 100,
        "volume": 1000, "high": p, "low": previous, "market_cap": None, "previous_close": previous,
        "last_updated": timezone.now().isoformat().replace("+00:00", "Z"), "source": "simulated",
    }  # fmt: skip


def position_update(portfolio_id: int, symbol: str, quantity: str, price: str) -> PositionUpdate:
    q, p = Decimal(quantity), Decimal(price)
    return {
        "portfolio_id": portfolio_id, "symbol": symbol, "quantity": q, "current_price": p,
        "current_value": q * p, "daily_change": q, "total_return": q * p - q * 100,
        "total_return_percent": Decimal(5), "significant_change": False,
    }  # fmt: skip


def portfolio_update(
    portfolio_id: int, name: str, total: str, symbol: str, quantity: str, price: str
) -> PortfolioUpdate:
    q, p = Decimal(quantity), Decimal(price)
    return {
        "portfolio_id": portfolio_id, "name": name, "total_value": Decimal(total), "total_cost": Decimal(10000),
        "daily_change": Decimal(-250), "daily_change_percent": Decimal("-1.5"),
        "total_return": Decimal(total) - 10000, "total_return_percent": Decimal(3),
        "value_changed": True, "valued_at": timezone.now().isoformat().replace("+00:00", "Z"),
        "positions_updated": [
            {"symbol": symbol, "quantity": q, "current_price": p, "current_value": q * p, "daily_change": q}
        ],
    }  # fmt: skip
