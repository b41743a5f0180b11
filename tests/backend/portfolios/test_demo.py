from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core import serializers
from django.core.management import call_command

from backend.market.models import Asset, Quote
from backend.portfolios.demo import demo_data_seed
from backend.portfolios.models import Portfolio, Position, Transaction
from backend.portfolios.selectors import portfolios_read
from backend.portfolios.services.transactions import transaction_buy

pytestmark = pytest.mark.django_db
D = Decimal
AT = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)


def dump() -> str:
    objects = [
        *User.objects.order_by("pk"),
        *Asset.objects.order_by("pk"),
        *Portfolio.objects.order_by("pk"),
        *Position.objects.order_by("pk"),
        *Transaction.objects.order_by("pk"),
    ]
    return serializers.serialize("json", objects)


def demo_portfolio(name: str) -> Portfolio:
    return Portfolio.objects.get(owner__username="demo", name=name)


def test_seed_demo_twice_changes_nothing(settings):
    settings.DEMO_LOGINS = True
    first_out, second_out = StringIO(), StringIO()
    call_command("seed_demo", stdout=first_out)
    first = dump()
    call_command("seed_demo", stdout=second_out)
    assert dump() == first
    assert "19 transactions created" in first_out.getvalue()
    assert "0 assets, 0 portfolios, 0 transactions created" in second_out.getvalue()


def test_seed_demo_loads_well_known_symbols_and_two_portfolios_for_demo(settings):
    settings.DEMO_LOGINS = True
    call_command("seed_demo")
    symbols = set(Asset.objects.values_list("symbol", flat=True))
    assert {"AAPL", "SPY", "BTC-USD", "^GSPC", "SAP.DE", "VOD.L"} <= symbols
    assert {"EURUSD=X", "GBPUSD=X"} <= symbols  # the pairs the ledger converts through, tracked
    assert len(symbols) >= 20
    demo = User.objects.get(username="demo")
    assert Portfolio.objects.filter(owner=demo).count() == 2
    assert demo.check_password("demo")
    assert User.objects.get(username="admin").is_superuser


def test_seed_demo_creates_no_password_logins_outside_dev_settings(settings):
    settings.DEMO_LOGINS = False
    call_command("seed_demo")
    assert not User.objects.filter(username="admin").exists()
    assert not User.objects.get(username="demo").has_usable_password()


def test_the_demo_positions_are_derived_from_a_ledger_of_every_kind_of_entry():
    demo_data_seed(with_logins=False)
    growth, income = demo_portfolio("Growth"), demo_portfolio("Income & Crypto")
    kinds = set(Transaction.objects.filter(portfolio__owner__username="demo").values_list("type", flat=True))
    assert kinds == {"buy", "sell", "dividend", "fee"}
    assert growth.positions.count() == 6
    assert income.positions.count() == 8
    # NVDA: 40 bought at 95.10 + 1 fee, 10 sold at 142.30 - 1 fee: 1422 - 3805 x 10 / 40.
    nvda = growth.positions.get(asset__symbol="NVDA")
    assert (nvda.quantity, nvda.cost_basis, nvda.realized_gain) == (D(30), D("2853.75"), D("470.75"))
    growth.refresh_from_db()
    income.refresh_from_db()
    assert (growth.realized_gain, growth.dividends, growth.fees) == (D("470.75"), D("6.5"), D(0))
    # KO 48.50 USD + VOD.L 4,500 pence at 0.0127 USD a penny; the account fee 15 USD.
    assert (income.dividends, income.fees) == (D("105.65"), D(15))
    sap = income.positions.get(asset__symbol="SAP.DE")
    vod = income.positions.get(asset__symbol="VOD.L")
    assert (sap.asset.currency, sap.average_cost, sap.cost_basis) == ("EUR", D("178.726667"), D("2908.7765"))
    assert (vod.asset.currency, vod.average_cost, vod.cost_basis) == ("GBp", D("71.2"), D("1801.36"))


def test_the_demo_euro_and_pence_holdings_are_valued_in_dollars():
    demo_data_seed(with_logins=False)
    for symbol, price in {"SAP.DE": "200", "EURUSD=X": "1.10", "VOD.L": "75", "GBPUSD=X": "1.30"}.items():
        Quote.objects.create(
            asset=Asset.objects.get(symbol=symbol), price=D(price), source="t", quoted_at=AT, fetched_at=AT
        )
    income = demo_portfolio("Income & Crypto")
    (read,) = portfolios_read(owner_id=income.owner_id, portfolio_id=income.pk)
    positions = {p["symbol"]: p for p in read["positions"]}
    assert read["currency"] == "USD"
    assert (positions["SAP.DE"]["currency"], positions["SAP.DE"]["current_value"]) == ("EUR", D("3300.00"))
    assert (positions["VOD.L"]["currency"], positions["VOD.L"]["current_value"]) == ("GBp", D("1950.00"))
    assert positions["VOD.L"]["fx_rate"] == D("0.013")


def test_a_demo_portfolio_with_a_ledger_of_its_own_is_left_as_it_is():
    """An older seed's bare positions became opening buys (no external_id): not doubled."""
    demo = User.objects.create_user("demo")
    growth = Portfolio.objects.create(owner=demo, name="Growth")
    transaction_buy(portfolio=growth, symbol="AAPL", quantity=D(25), price=D("172.50"))
    result = demo_data_seed(with_logins=False)
    assert list(growth.transactions.values_list("asset__symbol", "quantity")) == [("AAPL", D(25))]
    assert result.portfolios_created == 1
    assert result.transactions_created == 11  # the other portfolio's ledger
