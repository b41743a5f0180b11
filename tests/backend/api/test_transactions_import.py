"""CSV import: all or nothing, line numbers in errors, idempotent re-import, one revaluation;
and the Interactive Brokers Flex Query preset, on a sample written from its documented
columns."""

from __future__ import annotations

from decimal import Decimal

import pytest
from celery.app.base import Celery
from django.core.files.uploadedfile import SimpleUploadedFile

from backend.portfolios.models import Portfolio, Position, Transaction

from .test_portfolios import ann, quote, token_client  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db

HEADER = "date,type,symbol,quantity,price,fee,amount,ratio,currency,fx_rate,external_id\n"
GOOD = (
    HEADER
    + "2026-01-05,buy,AAPL,10,100,5,,,,,\n"
    + "2026-01-06T10:30:00Z,buy,SAP.DE,4,150,,,,EUR,1.10,broker-7\n"
    + "2026-01-07,sell,AAPL,4,120,2,,,USD,,\n"
    + "\n"
    + "2026-01-08,dividend,AAPL,,,,12.5,,,,\n"
    + "2026-01-09,split,AAPL,,,,,2:1,,,\n"
    + "2026-01-10,fee,,,,,7.5,,,,\n"
    + "2026-01-10,fee,,,,,7.5,,,,\n"  # the same line twice: two fees
)


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, dict]]:
    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        Celery, "send_task", lambda self, name, args=None, kwargs=None, **kw: calls.append((name, kwargs))
    )
    return calls


@pytest.fixture
def main(ann) -> Portfolio:  # noqa: F811
    quote("AAPL", "120.00", "118.00")
    return Portfolio.objects.create(owner=ann, name="Main")


def upload(client, portfolio: Portfolio, text: str, **form: str):
    file = SimpleUploadedFile("ledger.csv", text.encode(), content_type="text/csv")
    return client.post(f"/api/portfolios/{portfolio.pk}/transactions/import/", {"file": file, **form})


def test_an_import_creates_everything_once_and_asks_for_one_revaluation(
    ann,  # noqa: F811
    main,
    sent,
    django_capture_on_commit_callbacks,
):
    client = token_client(ann)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, main, GOOD)
    assert response.status_code == 200, response.json()
    assert response.json() == {"created": 7, "duplicates": 0, "errors": []}
    # cost 1005, sell 4 (gain 478 - 402 = 76), 6 left, split: 12 at 50.25
    aapl = Position.objects.get(portfolio=main, asset__symbol="AAPL")
    assert (aapl.quantity, aapl.average_cost, aapl.cost_basis, aapl.realized_gain, aapl.dividends) == (
        12,
        Decimal("50.25"),
        603,
        76,
        Decimal("12.5"),
    )
    assert Position.objects.get(portfolio=main, asset__symbol="SAP.DE").cost_basis == Decimal(660)  # 600 * 1.1
    main.refresh_from_db()
    assert main.fees == 15
    assert [name for name, _ in sent].count("tasks.portfolios.revalue_portfolio") == 1
    again = upload(client, main, GOOD)
    assert again.status_code == 200
    assert again.json() == {"created": 0, "duplicates": 7, "errors": []}
    assert Transaction.objects.filter(portfolio=main).count() == 7


def test_any_error_imports_nothing_and_names_its_lines(ann, main, sent):  # noqa: F811
    client = token_client(ann)
    bad = (
        HEADER
        + "2026-01-05,buy,AAPL,10,100,,,,,,\n"
        + "2026-01-06,buy,AAPL,-1,100,,,,,,\n"
        + "yesterday,buy,AAPL,1,100,,,,,,\n"
        + "2026-01-07,swap,AAPL,1,1,,,,,,\n"
        + "2026-01-08,sell,AAPL,11,100,,,,,,\n"
    )
    response = upload(client, main, bad)
    assert response.status_code == 400
    body = response.json()
    assert body["created"] == 0
    assert [e["line"] for e in body["errors"]] == [3, 4, 5]
    assert "quantity" in body["errors"][0]["message"]
    assert not Transaction.objects.exists()
    # Parsed fine, but the sell on line 3 sells more than the 10 held.
    uncovered = HEADER + "2026-01-05,buy,AAPL,10,100,,,,,,\n" + "2026-01-08,sell,AAPL,11,100,,,,,,\n"
    response = upload(client, main, uncovered)
    assert response.status_code == 400
    assert response.json()["errors"] == [{"line": 3, "message": response.json()["errors"][0]["message"]}]
    assert "insufficient_quantity" in response.json()["errors"][0]["message"]
    assert not Transaction.objects.exists()
    assert not Position.objects.exists()
    no_rate = HEADER + "2026-01-05,buy,VOD.L,10,7250,,,,,,\n"
    response = upload(client, main, no_rate)
    assert response.status_code == 400
    assert "fx_unavailable" in response.json()["errors"][0]["message"]
    assert upload(client, main, "a,b\n1,2\n").json()["errors"][0]["line"] == 1


# An Interactive Brokers Flex Query (Format CSV, column headers on, no section codes), two
# sections: Trades then Cash Transactions. LSE prices come in GBP; the asset trades in GBp.
IBKR = (
    '"ClientAccountID","CurrencyPrimary","FXRateToBase","AssetClass","Symbol","Description","ListingExchange",'
    '"TradeID","TransactionID","DateTime","TradeDate","Quantity","TradePrice","IBCommission","Buy/Sell"\n'
    '"U1234567","USD","1","STK","AAPL","APPLE INC","NASDAQ","101","9001","20260105;153000","20260105","10",'
    '"100","-1","BUY"\n'
    '"U1234567","GBP","1.25","STK","VOD","VODAFONE GROUP PLC","LSE","102","9002","20260106;090000","20260106",'
    '"100","0.72","-3","BUY"\n'
    '"U1234567","USD","1","STK","AAPL","APPLE INC","NASDAQ","103","9003","20260107;160000","20260107","-4",'
    '"120","-1","SELL"\n'
    '"U1234567","EUR","1.1","CASH","EUR.USD","EUR.USD","IDEALFX","104","9004","20260107;160000","20260107",'
    '"1000","1.1","0","BUY"\n'
    '"ClientAccountID","CurrencyPrimary","FXRateToBase","AssetClass","Symbol","Description","ListingExchange",'
    '"DateTime","Amount","Type","TransactionID"\n'
    '"U1234567","USD","1","STK","AAPL","AAPL CASH DIVIDEND","NASDAQ","20260110;000000","2.4","Dividends","9101"\n'
    '"U1234567","USD","1","STK","AAPL","AAPL US TAX","NASDAQ","20260110;000000","-0.36","Withholding Tax","9102"\n'
    '"U1234567","USD","1","","","DEPOSIT","","20260104;000000","5000","Deposits/Withdrawals","9103"\n'
)


def test_the_interactive_brokers_preset(ann, main, sent):  # noqa: F811
    client = token_client(ann)
    response = upload(client, main, IBKR)
    assert response.status_code == 200, response.json()
    assert response.json() == {"created": 5, "duplicates": 0, "errors": []}
    aapl = Position.objects.get(portfolio=main, asset__symbol="AAPL")
    # bought 10 at 100 + 1 commission, sold 4 at 120 - 1: gain 479 - 400.4 = 78.6
    assert (aapl.quantity, aapl.cost_basis, aapl.realized_gain, aapl.dividends) == (
        6,
        Decimal("600.6"),
        Decimal("78.6"),
        Decimal("2.4"),
    )
    vod = Position.objects.get(portfolio=main, asset__symbol="VOD.L")
    # 100 at 72 pence + 300 pence commission, at 0.0125 USD a penny: (7200 + 300) * 0.0125
    assert (vod.average_cost, vod.cost_basis) == (Decimal(75), Decimal("93.75"))
    assert Transaction.objects.get(external_id="ibkr:9002").currency == "GBp"
    main.refresh_from_db()
    assert main.fees == Decimal("0.36")
    assert upload(client, main, IBKR, format="ibkr").json() == {"created": 0, "duplicates": 5, "errors": []}
