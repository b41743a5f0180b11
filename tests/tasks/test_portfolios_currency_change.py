"""A changed asset currency (the source names another, or an operator corrects it in the
admin) tracks the holders' new pairs and revalues the holders: tasks/portfolios.py's
receiver of `asset_currencies_changed`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.market.models import Asset
from backend.market.services.ingest import quotes_store
from backend.market.services.sources.yahoo import YahooQuote
from backend.portfolios.models import Portfolio
from backend.portfolios.services.currency_pairs import holders_pairs_track
from backend.portfolios.services.transactions import transaction_buy
from tasks import portfolios as portfolio_tasks
from tests.backend.market.test_currency_from_source import asset_change_form

pytestmark = pytest.mark.django_db
AT = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
D = Decimal


@pytest.fixture
def chained(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(portfolio_tasks, "revaluation_chain", calls.append)
    return calls


def holding(owner: str, base: str, symbol: str) -> Portfolio:
    portfolio = Portfolio.objects.create(owner=User.objects.create_user(owner), name=owner, base_currency=base)
    transaction_buy(portfolio=portfolio, symbol=symbol, quantity=D(10), price=D(50), fx_rate=D(1))
    return portfolio


def test_holders_pairs_track_tracks_one_pair_per_base_currency_holding_the_asset():
    Asset.objects.create(symbol="SIE", currency="EUR")
    holding("ann", "USD", "SIE")
    holding("bob", "GBP", "SIE")
    holding("cat", "EUR", "SIE")  # no pair needed
    assert holders_pairs_track(symbols=["SIE"]) == [("EUR", "EUR"), ("EUR", "GBP"), ("EUR", "USD")]
    assert Asset.objects.filter(symbol__in=["EURUSD=X", "EURGBP=X"]).count() == 2
    assert not Asset.objects.filter(symbol="EUREUR=X").exists()


def test_a_currency_the_source_names_tracks_the_new_pair_and_revalues_the_holders(
    chained, django_capture_on_commit_callbacks
):
    Asset.objects.create(symbol="SIE")  # no suffix: taken for USD
    holding("ann", "USD", "SIE")
    assert not Asset.objects.filter(symbol="EURUSD=X").exists()
    with django_capture_on_commit_callbacks(execute=True):
        quotes_store(quotes=[YahooQuote(symbol="SIE", price=D(200), source="yahoo", quoted_at=AT, currency="EUR")])
    assert Asset.objects.filter(symbol="EURUSD=X").exists()
    assert chained == [["SIE"]]


def test_an_operators_currency_correction_in_the_admin_tracks_the_pair_and_revalues(
    chained, django_capture_on_commit_callbacks
):
    asset = Asset.objects.create(symbol="NESN", exchange="SIX")
    holding("ann", "USD", "NESN")
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    form = asset_change_form(asset, currency="CHF")
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/admin/market/asset/{asset.pk}/change/", form).status_code == 302
    assert Asset.objects.filter(symbol="CHFUSD=X").exists()
    assert chained == [["NESN"]]

    # Saving without touching the currency asks for nothing.
    with django_capture_on_commit_callbacks(execute=True):
        later = {**form, "name": "Nestle", "currency_locked": "on"}
        assert client.post(f"/admin/market/asset/{asset.pk}/change/", later).status_code == 302
    assert chained == [["NESN"]]


def test_a_price_without_a_currency_change_sends_nothing(chained, django_capture_on_commit_callbacks):
    Asset.objects.create(symbol="AAPL")
    holding("ann", "USD", "AAPL")
    with django_capture_on_commit_callbacks(execute=True):
        quotes_store(quotes=[YahooQuote(symbol="AAPL", price=D(190), source="yahoo", quoted_at=AT, currency="USD")])
        quotes_store(
            quotes=[YahooQuote(symbol="AAPL", price=D(191), source="yahoo", quoted_at=AT + timedelta(minutes=1))]
        )
    assert chained == []
