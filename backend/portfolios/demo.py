"""Demo data for `make run`: well-known symbols and two portfolios for the demo user."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction

from backend.market.models import Asset

from .models import Portfolio, Position

T = Asset.AssetType
DEMO_ASSETS: list[tuple[str, str, str, str]] = [
    ("AAPL", "Apple Inc.", T.STOCK, "NASDAQ"),
    ("MSFT", "Microsoft Corporation", T.STOCK, "NASDAQ"),
    ("GOOGL", "Alphabet Inc. Class A", T.STOCK, "NASDAQ"),
    ("AMZN", "Amazon.com, Inc.", T.STOCK, "NASDAQ"),
    ("NVDA", "NVIDIA Corporation", T.STOCK, "NASDAQ"),
    ("META", "Meta Platforms, Inc.", T.STOCK, "NASDAQ"),
    ("TSLA", "Tesla, Inc.", T.STOCK, "NASDAQ"),
    ("BRK-B", "Berkshire Hathaway Inc. Class B", T.STOCK, "NYSE"),
    ("JPM", "JPMorgan Chase & Co.", T.STOCK, "NYSE"),
    ("V", "Visa Inc.", T.STOCK, "NYSE"),
    ("JNJ", "Johnson & Johnson", T.STOCK, "NYSE"),
    ("KO", "The Coca-Cola Company", T.STOCK, "NYSE"),
    ("XOM", "Exxon Mobil Corporation", T.STOCK, "NYSE"),
    ("SPY", "SPDR S&P 500 ETF Trust", T.ETF, "NYSEARCA"),
    ("QQQ", "Invesco QQQ Trust", T.ETF, "NASDAQ"),
    ("VTI", "Vanguard Total Stock Market ETF", T.ETF, "NYSEARCA"),
    ("GLD", "SPDR Gold Shares", T.ETF, "NYSEARCA"),
    ("BTC-USD", "Bitcoin USD", T.CRYPTO, "CCC"),
    ("ETH-USD", "Ethereum USD", T.CRYPTO, "CCC"),
    ("^GSPC", "S&P 500", T.INDEX, "SNP"),
    ("^DJI", "Dow Jones Industrial Average", T.INDEX, "DJI"),
]

DEMO_PORTFOLIOS: dict[str, list[tuple[str, str, str]]] = {
    "Growth": [
        ("AAPL", "25", "172.50"),
        ("MSFT", "12", "331.20"),
        ("NVDA", "30", "95.10"),
        ("AMZN", "15", "142.80"),
        ("GOOGL", "20", "138.40"),
        ("QQQ", "8", "402.00"),
    ],
    "Income & Crypto": [
        ("JNJ", "40", "158.30"),
        ("KO", "100", "59.75"),
        ("XOM", "35", "104.60"),
        ("VTI", "20", "228.90"),
        ("BTC-USD", "0.35", "43150.00"),
        ("ETH-USD", "2.5", "2280.00"),
    ],
}


@dataclass(frozen=True)
class DemoSeedResult:
    assets_created: int
    portfolios_created: int
    positions_created: int


def _user_ensure(*, username: str, password: str | None, is_staff: bool) -> User:
    user, created = User.objects.get_or_create(
        username=username, defaults={"is_staff": is_staff, "is_superuser": is_staff}
    )
    if password is None:
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
    elif created or not user.check_password(password):
        # Only when it differs: a re-hash would change the row on every run.
        user.set_password(password)
        user.save(update_fields=["password"])
    return user


@transaction.atomic
def demo_data_seed(*, with_logins: bool) -> DemoSeedResult:
    """Idempotent: a second run finds everything in place and writes nothing."""
    assets_created = 0
    for symbol, name, asset_type, exchange in DEMO_ASSETS:
        _, created = Asset.objects.get_or_create(
            symbol=symbol, defaults={"name": name, "asset_type": asset_type, "exchange": exchange}
        )
        assets_created += created
    if with_logins:
        _user_ensure(username="admin", password="admin", is_staff=True)  # noqa: S106 (dev only)
    demo = _user_ensure(username="demo", password="demo" if with_logins else None, is_staff=False)

    assets = {a.symbol: a for a in Asset.objects.filter(symbol__in=[s for s, *_ in DEMO_ASSETS])}
    portfolios_created = positions_created = 0
    for portfolio_name, holdings in DEMO_PORTFOLIOS.items():
        portfolio, created = Portfolio.objects.get_or_create(owner=demo, name=portfolio_name)
        portfolios_created += created
        for symbol, quantity, average_cost in holdings:
            _, created = Position.objects.get_or_create(
                portfolio=portfolio,
                asset=assets[symbol],
                defaults={"quantity": Decimal(quantity), "average_cost": Decimal(average_cost)},
            )
            positions_created += created
    return DemoSeedResult(assets_created, portfolios_created, positions_created)
