"""Currencies: the exchange-suffix rule, minor units, pair symbols; a new asset's currency;
Yahoo's currency field; the simulated source pricing pairs; a cycle tracking the pairs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from backend.market.currency import (
    InvalidCurrency,
    currencies_equivalent,
    currency_for_symbol,
    currency_major,
    currency_normalize,
    fx_from_pair,
    pair_parse,
    pair_symbol,
)
from backend.market.models import Asset
from backend.market.selectors import pairs_needed, tracked_symbols
from backend.market.services.sources.simulated import SimulatedSource
from backend.market.services.sources.yahoo import parse_yahoo_quote


@pytest.mark.parametrize(
    ("symbol", "currency"),
    [
        ("AAPL", "USD"),
        ("BRK/B", "USD"),
        ("VOD.L", "GBp"),
        ("SAP.DE", "EUR"),
        ("AIR.PA", "EUR"),
        ("ASML.AS", "EUR"),
        ("ENI.MI", "EUR"),
        ("7203.T", "JPY"),
        ("RY.TO", "CAD"),
        ("0700.HK", "HKD"),
        ("NESN.SW", "CHF"),
        ("BRK.B", "USD"),  # an unknown suffix: USD
        ("EURUSD=X", "USD"),  # a pair is quoted in its second currency
    ],
)
def test_the_exchange_suffix_rule(symbol, currency):
    assert currency_for_symbol(symbol) == currency


def test_minor_units_are_hundredths_of_their_major_currency():
    assert currency_major("GBp") == ("GBP", 100)
    assert currency_major("GBX") == ("GBP", 100)
    assert currency_major("ZAc") == ("ZAR", 100)
    assert currency_major("ILA") == ("ILS", 100)
    assert currency_major("EUR") == ("EUR", 1)
    assert currency_major("GBp").factor == Decimal("0.01")
    assert currencies_equivalent("GBp", "GBX")
    assert not currencies_equivalent("GBp", "GBP")
    # 7250 pence at GBPUSD=X 1.25: 7250 * 1.25 / 100 = 90.625 dollars
    assert fx_from_pair("GBp", Decimal("1.25")) == Decimal("0.0125")
    assert Decimal(7250) * Decimal("0.0125") == Decimal("90.625")
    assert fx_from_pair("EUR", None) is None


def test_pairs_and_codes():
    assert pair_symbol("EUR", "USD") == "EURUSD=X"
    assert pair_symbol("GBp", "USD") == "GBPUSD=X"
    assert pair_symbol("GBp", "GBP") is None  # pence into pounds: no pair, x 0.01
    assert pair_symbol("USD", "usd") is None
    assert pair_parse("EURUSD=X") == ("EUR", "USD")
    assert pair_parse("AAPL") is None
    assert currency_normalize("eur") == "EUR"
    assert currency_normalize("GBp") == "GBp"
    with pytest.raises(InvalidCurrency):
        currency_normalize("EURO")


@pytest.mark.django_db
def test_a_new_asset_takes_its_suffix_currency_unless_given_one():
    assert Asset.objects.create(symbol="VOD.L").currency == "GBp"
    assert Asset.objects.create(symbol="SAP.DE", currency="CHF").currency == "CHF"
    Asset.objects.bulk_create([Asset(symbol="7203.T"), Asset(symbol="MSFT")])
    assert dict(Asset.objects.filter(symbol__in=["7203.T", "MSFT"]).values_list("symbol", "currency")) == {
        "7203.T": "JPY",
        "MSFT": "USD",
    }


def test_yahoo_names_the_currency():
    item = {"symbol": "VOD.L", "regularMarketPrice": 72.1, "regularMarketTime": 1_700_000_000, "currency": "GBp"}
    assert getattr(parse_yahoo_quote(item), "currency", None) == "GBp"
    assert getattr(parse_yahoo_quote({**item, "currency": "??"}), "currency", None) is None


def test_the_simulated_source_prices_pairs_near_real_rates():
    source = SimulatedSource(clock=lambda: 1_767_225_600)  # 2026-01-01
    eurusd = source.quote("EURUSD=X")
    usdjpy = source.quote("USDJPY=X")
    assert Decimal("0.7") < eurusd.price < Decimal("1.5")
    assert Decimal(90) < usdjpy.price < Decimal(220)
    assert eurusd.previous_close is not None
    assert abs(eurusd.price / eurusd.previous_close - 1) < Decimal("0.05")  # a day's move


@pytest.mark.django_db
def test_a_cycle_tracks_the_pairs_held_positions_convert_through():
    from backend.portfolios.models import Portfolio, Position

    owner = User.objects.create_user("fx")
    dollars = Portfolio.objects.create(owner=owner, name="Dollars")
    pounds = Portfolio.objects.create(owner=owner, name="Pounds", base_currency="GBP")
    for portfolio, symbol in [(dollars, "SAP.DE"), (dollars, "VOD.L"), (pounds, "VOD.L"), (dollars, "AAPL")]:
        asset, _ = Asset.objects.get_or_create(symbol=symbol)
        Position.objects.create(portfolio=portfolio, asset=asset, quantity=Decimal(1), average_cost=Decimal(1))
    assert pairs_needed() == {"EURUSD=X", "GBPUSD=X"}
    Asset.objects.create(symbol="EURUSD=X")  # the ledger creates the pairs it needs
    assert tracked_symbols() == ["AAPL", "EURUSD=X", "SAP.DE", "VOD.L"]
