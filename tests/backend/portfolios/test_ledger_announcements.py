"""What each ledger write announces to tasks/: the revaluation, the daily values'
re-derivation from the earliest day it touched, and the holdings it wrote to (for their
history backfill). The position shortcuts and the CSV import announce like a posted
transaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from backend.portfolios.models import Portfolio, Position, Transaction
from backend.portfolios.services.csv_import import transactions_import
from backend.portfolios.services.portfolios import position_add, position_change, position_remove
from backend.portfolios.services.transactions import TransactionInput, transaction_delete, transaction_record
from backend.portfolios.signals import holding_opened, ledger_changed, portfolio_changed

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def heard() -> Iterator[list[tuple[str, dict]]]:
    calls: list[tuple[str, dict]] = []
    receivers = {
        "revalue": lambda **kw: calls.append(("revalue", {"portfolio_id": kw["portfolio_id"]})),
        "rederive": lambda **kw: calls.append(("rederive", {"since": kw["since"]})),
        "opened": lambda **kw: calls.append(("opened", {"symbols": kw["symbols"]})),
    }
    portfolio_changed.connect(receivers["revalue"], weak=False)
    ledger_changed.connect(receivers["rederive"], weak=False)
    holding_opened.connect(receivers["opened"], weak=False)
    yield calls
    portfolio_changed.disconnect(receivers["revalue"])
    ledger_changed.disconnect(receivers["rederive"])
    holding_opened.disconnect(receivers["opened"])


@pytest.fixture
def main() -> Portfolio:
    return Portfolio.objects.create(owner=User.objects.create_user("ann"), name="Main")


def buy(portfolio: Portfolio, symbol: str, day: str) -> Transaction:
    at = datetime.fromisoformat(day).replace(hour=15, tzinfo=UTC)
    data = TransactionInput(type="buy", symbol=symbol, quantity=D(5), price=D(10), fee=D(0), executed_at=at)
    return transaction_record(portfolio=portfolio, data=data).transaction


def test_a_posted_buy_announces_its_day_and_its_holding(main, heard):
    buy(main, "AAPL", "2026-03-02")
    assert heard == [
        ("revalue", {"portfolio_id": main.pk}),
        ("rederive", {"since": date(2026, 3, 2)}),
        ("opened", {"symbols": ["AAPL"]}),
    ]


def test_a_deleted_transaction_announces_its_day_and_no_holding(main, heard):
    row = buy(main, "AAPL", "2026-03-02")
    heard.clear()
    transaction_delete(transaction_row=row)
    assert heard == [("revalue", {"portfolio_id": main.pk}), ("rederive", {"since": date(2026, 3, 2)})]


def test_changing_or_removing_a_position_re_derives_from_its_first_transaction(main, heard):
    buy(main, "AAPL", "2026-02-10")
    buy(main, "AAPL", "2026-04-01")
    heard.clear()
    position = position_change(position=Position.objects.get(portfolio=main), quantity=D(3))
    assert ("rederive", {"since": date(2026, 2, 10)}) in heard
    heard.clear()
    position_remove(position=position)
    assert heard == [("revalue", {"portfolio_id": main.pk}), ("rederive", {"since": date(2026, 2, 10)})]


def test_adding_a_position_opens_its_holding(main, heard):
    position_add(portfolio=main, symbol="msft", quantity=D(2), average_cost=D(300))
    assert ("opened", {"symbols": ["MSFT"]}) in heard


def test_an_import_announces_once_from_its_earliest_day_with_every_holding(main, heard):
    content = (
        b"date,type,symbol,quantity,price,fee,amount,ratio,currency,fx_rate,external_id\n"
        b"2026-01-07,buy,AAPL,10,100,0,,,,,\n"
        b"2026-01-05,buy,MSFT,4,150,0,,,,,\n"
        b"2026-01-09,sell,AAPL,4,120,0,,,,,\n"
    )
    result = transactions_import(portfolio=main, content=content)
    assert result.created == 3
    assert heard == [
        ("revalue", {"portfolio_id": main.pk}),
        ("rederive", {"since": date(2026, 1, 5)}),
        ("opened", {"symbols": ["AAPL", "MSFT"]}),
    ]
