"""Demo data for `make run`: well-known symbols and two USD portfolios for the demo user, written
as a ledger through the transaction services (buys, a sell, dividends, a fee), with a euro
holding (SAP.DE) and a pence one (VOD.L), so the first screen shows values converted into the
base currency (docs/protocol.md, "Transactions" and "Currencies").

Idempotent: each demo transaction carries an `external_id` (`demo:<n>`), so a second run
records nothing. A demo portfolio whose ledger holds anything else (the user's own entries,
or an older seed's positions migrated into opening buys) is left as it is.

`demo_history_seed` gives every demo asset simulated daily closes from the ledger's first
day, so the charts, trends and returns have a past at once. The ledger's trade prices are
the simulated closes of their days: the simulated source pins its path to them
(backend/market/services/sources/reference_levels.py; docs/history-and-demo.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction

from backend.market.currency import pair_symbol
from backend.market.models import Asset
from backend.market.services.history import HistoryLoad, history_load, history_source
from backend.market.services.sources.simulated import SimulatedSource

from .models import Portfolio, Transaction
from .services.transactions import TransactionInput, transaction_record

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
    ("SAP.DE", "SAP SE", T.STOCK, "XETRA"),  # quoted in EUR
    ("VOD.L", "Vodafone Group Plc", T.STOCK, "LSE"),  # quoted in pence (GBp)
    ("SPY", "SPDR S&P 500 ETF Trust", T.ETF, "NYSEARCA"),
    ("QQQ", "Invesco QQQ Trust", T.ETF, "NASDAQ"),
    ("VTI", "Vanguard Total Stock Market ETF", T.ETF, "NYSEARCA"),
    ("GLD", "SPDR Gold Shares", T.ETF, "NYSEARCA"),
    ("BTC-USD", "Bitcoin USD", T.CRYPTO, "CCC"),
    ("ETH-USD", "Ethereum USD", T.CRYPTO, "CCC"),
    ("^GSPC", "S&P 500", T.INDEX, "SNP"),
    ("^DJI", "Dow Jones Industrial Average", T.INDEX, "DJI"),
]


@dataclass(frozen=True)
class DemoEntry:
    """One demo transaction; money in the asset's currency, `fx` into USD (None: the same)."""

    day: str
    type: str
    symbol: str | None
    quantity: str | None = None
    price: str | None = None
    fee: str | None = None
    amount: str | None = None
    fx: str | None = None


def _buy(day: str, symbol: str, quantity: str, price: str, fee: str = "0", fx: str | None = None) -> DemoEntry:
    return DemoEntry(day, "buy", symbol, quantity, price, fee, fx=fx)


DEMO_LEDGERS: dict[str, list[DemoEntry]] = {
    "Growth": [
        _buy("2024-02-05", "AAPL", "25", "172.50", "1.00"),
        _buy("2024-02-05", "MSFT", "12", "331.20", "1.00"),
        _buy("2024-03-11", "NVDA", "40", "95.10", "1.00"),
        _buy("2024-04-02", "AMZN", "15", "142.80"),
        _buy("2024-04-02", "GOOGL", "20", "138.40"),
        _buy("2024-05-20", "QQQ", "8", "402.00"),
        DemoEntry("2025-06-16", "sell", "NVDA", "10", "142.30", "1.00"),
        DemoEntry("2025-08-14", "dividend", "AAPL", amount="6.50"),
    ],
    "Income & Crypto": [
        _buy("2024-01-15", "JNJ", "40", "158.30"),
        _buy("2024-01-15", "KO", "100", "59.75"),
        _buy("2024-01-22", "XOM", "35", "104.60"),
        _buy("2024-01-22", "VTI", "20", "228.90"),
        _buy("2024-02-01", "BTC-USD", "0.35", "43150.00"),
        _buy("2024-02-01", "ETH-USD", "2.5", "2280.00"),
        _buy("2024-06-03", "SAP.DE", "15", "178.40", "4.90", fx="1.0850"),  # EUR: 1 EUR = 1.0850 USD
        _buy("2024-06-03", "VOD.L", "2000", "71.20", "0", fx="0.012650"),  # pence: 1 GBp = 0.01265 USD
        DemoEntry("2025-04-01", "dividend", "KO", amount="48.50"),
        DemoEntry("2025-08-01", "dividend", "VOD.L", amount="4500", fx="0.012700"),  # 2.25 p a share
        DemoEntry("2025-12-31", "fee", None, amount="15.00"),  # the account's yearly fee, in USD
    ],
}
EXTERNAL_ID_PREFIX = "demo:"
DEMO_USERNAME = "demo"


@dataclass(frozen=True)
class DemoSeedResult:
    assets_created: int
    portfolios_created: int
    transactions_created: int


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


def _input(entry: DemoEntry, n: int) -> TransactionInput:
    def number(text: str | None) -> Decimal | None:
        return None if text is None else Decimal(text)

    return TransactionInput(
        type=entry.type,
        symbol=entry.symbol,
        quantity=number(entry.quantity),
        price=number(entry.price),
        fee=number(entry.fee),
        amount=number(entry.amount),
        fx_rate=number(entry.fx),
        executed_at=datetime.fromisoformat(entry.day).replace(hour=15, tzinfo=UTC),
        external_id=f"{EXTERNAL_ID_PREFIX}{n}",
    )


def demo_ledger_record(*, portfolio: Portfolio, entries: list[DemoEntry]) -> int:
    """Record the demo entries missing from the portfolio's ledger; returns how many. Nothing
    when its ledger holds other transactions (the user's, or an older seed's)."""
    others = Transaction.objects.filter(portfolio=portfolio).exclude(external_id__startswith=EXTERNAL_ID_PREFIX)
    if others.exists():
        return 0
    return sum(transaction_record(portfolio=portfolio, data=_input(e, n)).created for n, e in enumerate(entries, 1))


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
    demo = _user_ensure(username=DEMO_USERNAME, password="demo" if with_logins else None, is_staff=False)

    portfolios_created = transactions_created = 0
    for portfolio_name, entries in DEMO_LEDGERS.items():
        portfolio, created = Portfolio.objects.get_or_create(owner=demo, name=portfolio_name)
        portfolios_created += created
        transactions_created += demo_ledger_record(portfolio=portfolio, entries=entries)
    return DemoSeedResult(assets_created, portfolios_created, transactions_created)


def demo_history_days(*, now: datetime, at_least: int) -> int:
    """Days of history that reach back to the demo ledgers' first day (at least `at_least`)."""
    first = min(datetime.fromisoformat(e.day) for entries in DEMO_LEDGERS.values() for e in entries)
    return max(at_least, (now.date() - first.date()).days + 1)


def demo_history_seed(*, days: int, now: datetime) -> HistoryLoad | None:
    """Simulated daily closes for every demo asset and the pairs the demo ledgers convert
    through, the ones missing only (a second run computes nothing). None when the history
    source is a real one: real closes are loaded for held symbols by the new-holding
    backfill or `update_asset_prices --historical`, never mixed with simulated ones."""
    managed = history_source()
    if managed is None or not isinstance(managed.source, SimulatedSource):
        return None
    symbols = {symbol for symbol, *_ in DEMO_ASSETS}
    currencies = set(Asset.objects.filter(symbol__in=symbols).values_list("currency", flat=True))
    demo_portfolios = Portfolio.objects.filter(owner__username=DEMO_USERNAME, name__in=DEMO_LEDGERS)
    bases = set(demo_portfolios.values_list("base_currency", flat=True))
    pairs = {pair for c in currencies for b in bases if (pair := pair_symbol(c, b)) is not None}
    return history_load(symbols=sorted(symbols | pairs), days=days, now=now)
