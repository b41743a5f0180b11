"""The asset currency a source names (Yahoo's `currency`) stored by quotes_store: one extra
statement per batch, never over an operator's correction in the admin, and a changed
currency revalues the portfolios holding the asset (its symbol is reported `changed`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from backend.market.models import Asset, Quote
from backend.market.services.ingest import quotes_store
from backend.market.services.sources.base import QuoteData
from backend.market.services.sources.yahoo import YahooQuote, parse_yahoo_response
from backend.portfolios.models import Portfolio
from backend.portfolios.services.revaluation import portfolios_revalue_for_symbols
from backend.portfolios.services.transactions import transaction_buy

pytestmark = pytest.mark.django_db
AT = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
D = Decimal


def yahoo(symbol: str, price: str, currency: str | None, at: datetime = AT) -> YahooQuote:
    return YahooQuote(symbol=symbol, price=D(price), source="yahoo", quoted_at=at, currency=currency)


def currency_of(symbol: str) -> str:
    return Asset.objects.get(symbol=symbol).currency


def test_the_currency_yahoo_names_replaces_the_suffix_guess_and_the_symbol_counts_as_changed():
    Asset.objects.create(symbol="SHEL")  # no suffix: USD until a source says otherwise
    Asset.objects.create(symbol="AAPL")
    quotes_store(quotes=[yahoo("SHEL", "2650", "GBp"), yahoo("AAPL", "190", "USD")])
    assert (currency_of("SHEL"), currency_of("AAPL")) == ("GBp", "USD")

    # The same price again, newer: only the currency changed, and that alone is a change.
    Asset.objects.filter(symbol="SHEL").update(currency="USD")
    result = quotes_store(quotes=[yahoo("SHEL", "2650", "GBp", AT + timedelta(minutes=1))])
    assert result.currencies == ["SHEL"]
    assert result.changed == ["SHEL"]
    assert currency_of("SHEL") == "GBp"


def test_the_wire_currency_travels_from_a_yahoo_answer_to_the_asset():
    Asset.objects.create(symbol="VOD.L", currency="USD")  # as an asset created before the suffix rule
    body = {
        "quoteResponse": {
            "result": [{"symbol": "VOD.L", "currency": "GBp", "regularMarketPrice": 72.1, "regularMarketTime": 1}],
            "error": None,
        }
    }
    answer = parse_yahoo_response(["VOD.L"], body)["VOD.L"]
    assert isinstance(answer, QuoteData)
    quotes_store(quotes=[answer])
    assert currency_of("VOD.L") == "GBp"


def test_no_currency_named_or_the_same_money_spelled_otherwise_changes_nothing():
    Asset.objects.create(symbol="BARC.L", currency="GBX")
    Asset.objects.create(symbol="SAP.DE")
    result = quotes_store(
        quotes=[
            yahoo("BARC.L", "180", "GBp"),  # GBX and GBp are both pence
            QuoteData(symbol="SAP.DE", price=D("160"), source="finnhub", quoted_at=AT),  # names none
        ]
    )
    assert result.currencies == []
    assert (currency_of("BARC.L"), currency_of("SAP.DE")) == ("GBX", "EUR")


def test_an_operators_currency_stands_against_the_source():
    Asset.objects.create(symbol="RDSA", currency="EUR", currency_locked=True)
    result = quotes_store(quotes=[yahoo("RDSA", "30", "USD")])
    assert result.currencies == []
    assert result.changed == ["RDSA"]  # the new price, nothing more
    assert currency_of("RDSA") == "EUR"


def test_an_older_quote_still_corrects_the_currency():
    Asset.objects.create(symbol="ASML")
    quotes_store(quotes=[yahoo("ASML", "700", None, AT + timedelta(minutes=5))])
    result = quotes_store(quotes=[yahoo("ASML", "690", "EUR", AT)])
    assert result.stale == ["ASML"]
    assert result.currencies == ["ASML"]
    assert result.changed == ["ASML"]
    assert currency_of("ASML") == "EUR"
    assert Quote.objects.get(asset__symbol="ASML").price == D("700")


def _queries(n: int) -> int:
    symbols = [f"C{n}X{i}" for i in range(n)]
    Asset.objects.bulk_create([Asset(symbol=s) for s in symbols])
    with CaptureQueriesContext(connection) as captured:
        result = quotes_store(quotes=[yahoo(s, "10", "EUR") for s in symbols])
    assert sorted(result.currencies) == sorted(symbols)
    assert Asset.objects.filter(symbol__in=symbols, currency="EUR").count() == n
    return len(captured.captured_queries)


def test_a_batch_stores_its_currencies_in_one_statement_whatever_its_size():
    assert _queries(3) == _queries(40)
    Asset.objects.create(symbol="ONE")
    with CaptureQueriesContext(connection) as without:
        quotes_store(quotes=[yahoo("ONE", "10", None)])
    Asset.objects.create(symbol="TWO")
    with CaptureQueriesContext(connection) as with_currency:
        quotes_store(quotes=[yahoo("TWO", "10", "EUR")])
    assert len(with_currency.captured_queries) == len(without.captured_queries) + 1


def asset_change_form(asset: Asset, *, currency: str) -> dict[str, str]:
    """The admin's change form for the asset as posted, with another currency."""
    return {
        "symbol": asset.symbol, "name": asset.name, "asset_type": asset.asset_type, "currency": currency,
        "exchange": asset.exchange, "is_active": "on", "tracking_status": asset.tracking_status,
        "quote-TOTAL_FORMS": "0", "quote-INITIAL_FORMS": "0", "quote-MIN_NUM_FORMS": "0", "quote-MAX_NUM_FORMS": "1",
    }  # fmt: skip


def test_editing_the_currency_in_the_admin_locks_it_and_unticking_hands_it_back():
    asset = Asset.objects.create(symbol="NESN", name="Nestle", exchange="SIX")
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    form = asset_change_form(asset, currency="CHF")
    response = client.post(f"/admin/market/asset/{asset.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    asset.refresh_from_db()
    assert (asset.currency, asset.currency_locked) == ("CHF", True)
    quotes_store(quotes=[yahoo("NESN", "95", "USD")])
    assert currency_of("NESN") == "CHF"

    # Saving again without touching the currency keeps the lock; unticking it frees it.
    assert client.post(f"/admin/market/asset/{asset.pk}/change/", {**form, "currency_locked": "on"}).status_code == 302
    assert Asset.objects.get(pk=asset.pk).currency_locked
    assert client.post(f"/admin/market/asset/{asset.pk}/change/", form).status_code == 302
    assert not Asset.objects.get(pk=asset.pk).currency_locked
    quotes_store(quotes=[yahoo("NESN", "96", "USD", AT + timedelta(minutes=1))])
    assert currency_of("NESN") == "USD"


def test_a_currency_correction_revalues_the_holders_in_their_base_currency():
    """SIE bought as if in dollars; Yahoo then says euros: the changed symbol's revaluation
    converts it at EURUSD=X."""
    owner = User.objects.create_user("ann")
    Asset.objects.create(symbol="SIE")
    pair = Asset.objects.create(symbol="EURUSD=X")
    Quote.objects.create(asset=pair, price=D("1.10"), source="test", quoted_at=AT, fetched_at=AT)
    portfolio = Portfolio.objects.create(owner=owner, name="Main")
    transaction_buy(portfolio=portfolio, symbol="SIE", quantity=D(10), price=D(200))
    quotes_store(quotes=[yahoo("SIE", "200", None)])
    portfolios_revalue_for_symbols(symbols=["SIE"])
    portfolio.refresh_from_db()
    assert portfolio.total_value == D(2000)

    result = quotes_store(quotes=[yahoo("SIE", "200", "EUR", AT + timedelta(minutes=1))])
    assert result.changed == ["SIE"]
    portfolios_revalue_for_symbols(symbols=result.changed)
    portfolio.refresh_from_db()
    assert portfolio.total_value == D(2200)  # 10 x 200 EUR x 1.10
