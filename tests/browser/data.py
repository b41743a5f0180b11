"""What the dashboard shows on the `make run` demo: the demo user's portfolios, priced and
valued as the pipeline and valuation would leave them (written directly: these tests are
about the browser, not the pipeline)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
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
    portfolio_id: int, name: str, total: str, symbol: str, quantity: str, price: str, fx: str = "1"
) -> PortfolioUpdate:
    """`fx`: the position's rate into the base currency (its value is quantity x price x fx)."""
    q, p = Decimal(quantity), Decimal(price)
    return {
        "portfolio_id": portfolio_id, "name": name, "total_value": Decimal(total), "total_cost": Decimal(10000),
        "daily_change": Decimal(-250), "daily_change_percent": Decimal("-1.5"),
        "total_return": Decimal(total) - 10000, "total_return_percent": Decimal(3),
        "value_changed": True, "valued_at": timezone.now().isoformat().replace("+00:00", "Z"),
        "positions_updated": [
            {"symbol": symbol, "quantity": q, "current_price": p, "current_value": q * p * Decimal(fx), "daily_change": q}
        ],
    }  # fmt: skip


# --- the performance panel: a short ledger with a daily close for every day ------------------

PERF_USER = "perf"
PERF_DAYS = 40  # days of closes before today
PERF_CLOSES: dict[str, tuple[str, str, str]] = {  # symbol: (currency, first close, daily step)
    "AAPL": ("USD", "100", "0.75"),
    "SAP.DE": ("EUR", "50", "0.20"),
    "EURUSD=X": ("USD", "1.05", "0.002"),
    "^GSPC": ("USD", "4000", "9"),
}


@dataclass(frozen=True)
class PerformanceSeed:
    user_id: int
    portfolio_id: int  # a USD portfolio with a dollar and a euro holding, a sell and a dividend
    empty_id: int  # a portfolio without transactions: nothing to compute a return from


def perf_close(symbol: str, days_ago: int) -> Decimal:
    """The symbol's close `days_ago` UTC days before today: a steady climb with a wiggle every
    third day, so the value chart and the benchmark differ in shape."""
    _, first, step = PERF_CLOSES[symbol]
    n = PERF_DAYS - days_ago
    wiggle = Decimal(n % 3 - 1) * Decimal(step) * 2
    return Decimal(first) + Decimal(step) * n + wiggle


def performance_seeded() -> PerformanceSeed:
    from backend.performance.services.daily_values import daily_values_derive
    from backend.portfolios.services.transactions import TransactionInput, transaction_record

    user = User.objects.create_user(PERF_USER, password=DEMO_PASSWORD)
    now = timezone.now()
    today = now.astimezone(UTC).date()

    def midday(ago: int) -> datetime:  # inside its UTC day whatever the time now
        return datetime.combine(today - timedelta(days=ago), time(12), tzinfo=UTC)

    for symbol, (currency, _, _) in PERF_CLOSES.items():
        asset = Asset.objects.create(
            symbol=symbol, currency=currency, tracking_status=Asset.TrackingStatus.TRACKED,
            asset_type=Asset.AssetType.INDEX if symbol.startswith("^") else Asset.AssetType.STOCK,
        )  # fmt: skip
        PriceHistory.objects.bulk_create(
            PriceHistory(asset=asset, quoted_at=midday(ago), price=perf_close(symbol, ago),
                         source="simulated")
            for ago in range(PERF_DAYS, 0, -1)
        )  # fmt: skip
        latest = perf_close(symbol, 0)
        Quote.objects.create(
            asset=asset, price=latest, previous_close=perf_close(symbol, 1), change=latest - perf_close(symbol, 1),
            change_percent=Decimal(0), source="simulated", quoted_at=now, fetched_at=now,
        )  # fmt: skip
    portfolio = Portfolio.objects.create(owner=user, name="Long run", base_currency="USD")
    ledger = [  # days ago, type, symbol, quantity, amount
        (30, "buy", "AAPL", "10", None),
        (12, "buy", "SAP.DE", "20", None),
        (5, "sell", "AAPL", "2", None),
        (3, "dividend", "AAPL", None, "4.40"),
    ]
    for ago, kind, symbol, quantity, amount in ledger:
        day = midday(ago) + timedelta(hours=3)
        transaction_record(
            portfolio=portfolio,
            data=TransactionInput(
                type=kind, symbol=symbol, quantity=Decimal(quantity) if quantity else None,
                price=perf_close(symbol, ago) if quantity else None, fee=Decimal(1) if quantity else None,
                amount=Decimal(amount) if amount else None, executed_at=day,
                fx_rate=perf_close("EURUSD=X", ago) if symbol == "SAP.DE" else None,
            ),
        )  # fmt: skip
    daily_values_derive(portfolio_id=portfolio.pk, since=today - timedelta(days=PERF_DAYS), today=today)
    empty = Portfolio.objects.create(owner=user, name="Empty", base_currency="USD")
    return PerformanceSeed(user_id=user.pk, portfolio_id=portfolio.pk, empty_id=empty.pk)
