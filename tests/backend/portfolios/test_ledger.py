"""The ledger: every transaction type against figures worked by hand, positions derived in
executed_at order, refusals that change nothing, idempotent posts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from backend.portfolios.models import Portfolio, Position, Transaction
from backend.portfolios.services.ledger import Entry, Holding, entry_apply
from backend.portfolios.services.transactions import (
    FxUnavailable,
    InsufficientQuantity,
    TransactionInput,
    TransactionInvalid,
    transaction_buy,
    transaction_delete,
    transaction_dividend,
    transaction_fee,
    transaction_record,
    transaction_sell,
    transaction_split,
)
from backend.portfolios.signals import portfolio_changed
from backend.portfolios.valuation import portfolio_valuations

from .conftest import hold, quote_set

pytestmark = pytest.mark.django_db
DAY = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
D = Decimal


def day(n: int) -> datetime:
    return DAY + timedelta(days=n)


@pytest.fixture
def main(ann) -> Portfolio:
    quote_set("AAPL", "120.00", "118.00")
    return Portfolio.objects.create(owner=ann, name="Main")


def position(portfolio: Portfolio, symbol: str = "AAPL") -> Position:
    return Position.objects.get(portfolio=portfolio, asset__symbol=symbol)


def figures(p: Position) -> tuple[Decimal | None, ...]:
    return (p.quantity, p.average_cost, p.cost_basis, p.realized_gain, p.dividends)


def entry(kind: str, **fields: object) -> Entry:
    fx_rate = D(str(fields.pop("fx_rate", 1)))
    values: dict[str, object] = {"quantity": None, "price": None, "fee": D(0), "amount": None, "ratio": ""}
    values.update(fields)
    return Entry(None, kind, fx_rate=fx_rate, **values)  # type: ignore[arg-type]


def test_each_formula_by_hand():
    bought = entry_apply(Holding(), entry("buy", quantity=D(10), price=D(100), fee=D(5), fx_rate=D("1.1")))
    # (10 * 100 + 5) * 1.1 = 1105.5 in base; 1005 in the asset's currency, 100.5 a share
    assert bought == Holding(D(10), D("1105.5"), D(1005))
    assert bought.average_cost == D("100.5")
    sold = entry_apply(bought, entry("sell", quantity=D(4), price=D(120), fee=D(2), fx_rate=D("1.2")))
    # share of cost 1105.5 * 4 / 10 = 442.2; proceeds (480 - 2) * 1.2 = 573.6; gain 131.4
    assert sold == Holding(D(6), D("663.3"), D("603"), realized_gain=D("131.4"))
    assert sold.average_cost == D("100.5")
    paid = entry_apply(sold, entry("dividend", amount=D("12.5"), fx_rate=D("1.1")))
    assert paid.dividends == D("13.75")
    split = entry_apply(paid, entry("split", ratio="3:1"))
    assert (split.quantity, split.cost, split.average_cost) == (D(18), D("663.3"), D("33.5"))  # 603 / 18
    thirds = entry_apply(Holding(D(10), D(100), D(100)), entry("split", ratio="1:3"))
    assert thirds.quantity == D("3.3333333333")
    assert entry_apply(thirds, entry("fee", amount=D(7))) == thirds  # the portfolio's, not the position's
    emptied = entry_apply(sold, entry("sell", quantity=D(6), price=D(90), fee=D(0)))
    assert (emptied.quantity, emptied.cost) == (0, 0)
    assert emptied.realized_gain == D("131.4") + D(540) - D("663.3")
    with pytest.raises(InsufficientQuantity):
        entry_apply(sold, entry("sell", quantity=D("6.0000000001"), price=D(1)))


def test_services_per_type_derive_the_position_and_the_portfolio_ledger(main):
    transaction_buy(portfolio=main, symbol="aapl", quantity=D(10), price=D(100), fee=D(5), executed_at=day(0))
    transaction_sell(portfolio=main, symbol="AAPL", quantity=D(4), price=D(120), fee=D(2), executed_at=day(1))
    transaction_dividend(portfolio=main, symbol="AAPL", amount=D("12.5"), executed_at=day(2))
    transaction_split(portfolio=main, symbol="AAPL", ratio="2:1", executed_at=day(3))
    transaction_fee(portfolio=main, amount=D("7.5"), executed_at=day(4))  # no symbol: the portfolio's
    # cost 1005 -> sell 4: share 402, gain 478 - 402 = 76, cost 603 -> split: 12 shares at 50.25
    assert figures(position(main)) == (D(12), D("50.25"), D(603), D(76), D("12.5"))
    main.refresh_from_db()
    assert (main.realized_gain, main.dividends, main.fees) == (D(76), D("12.5"), D("7.5"))
    assert Transaction.objects.filter(portfolio=main).count() == 5
    (valuation,) = portfolio_valuations(portfolios=Portfolio.objects.filter(pk=main.pk))
    # 12 * 120 = 1440 against 603; return 1440 - 603 + 76 + 12.5 - 7.5 = 918
    assert (valuation.figures.total_value, valuation.figures.total_cost) == (D(1440), D(603))
    assert valuation.figures.total_return == D(918)
    assert valuation.figures.daily_change == D(24)  # 12 * (120 - 118)


def test_a_back_dated_transaction_re_derives_what_follows(main):
    transaction_buy(portfolio=main, symbol="AAPL", quantity=D(10), price=D(100), executed_at=day(0))
    transaction_sell(portfolio=main, symbol="AAPL", quantity=D(5), price=D(110), executed_at=day(5))
    assert figures(position(main)) == (D(5), D(100), D(500), D(50), D(0))
    # A buy of 10 at 130 before the sell: the sell now takes a share of the average 115.
    transaction_buy(portfolio=main, symbol="AAPL", quantity=D(10), price=D(130), executed_at=day(3))
    assert figures(position(main)) == (D(15), D(115), D(1725), D(-25), D(0))


def test_a_sell_of_more_than_held_at_its_time_is_refused_and_changes_nothing(main):
    transaction_buy(portfolio=main, symbol="AAPL", quantity=D(10), price=D(100), executed_at=day(3))
    transaction_sell(portfolio=main, symbol="AAPL", quantity=D(5), price=D(110), executed_at=day(5))
    before = figures(position(main))
    with pytest.raises(InsufficientQuantity):  # nothing held yet on day 1
        transaction_sell(portfolio=main, symbol="AAPL", quantity=D(1), price=D(90), executed_at=day(1))
    with pytest.raises(InsufficientQuantity):  # covered on day 4, but the day-5 sell would not be
        transaction_sell(portfolio=main, symbol="AAPL", quantity=D(6), price=D(90), executed_at=day(4))
    with pytest.raises(InsufficientQuantity):  # appended: more than the 5 held now
        transaction_sell(portfolio=main, symbol="AAPL", quantity=D("5.5"), price=D(90), executed_at=day(9))
    assert figures(position(main)) == before
    assert Transaction.objects.filter(portfolio=main).count() == 2


def test_a_delete_that_would_uncover_a_later_sell_is_refused(main):
    first = transaction_buy(portfolio=main, symbol="AAPL", quantity=D(10), price=D(100), executed_at=day(0))
    second = transaction_buy(portfolio=main, symbol="AAPL", quantity=D(2), price=D(100), executed_at=day(1))
    transaction_sell(portfolio=main, symbol="AAPL", quantity=D(9), price=D(110), executed_at=day(2))
    before = figures(position(main))
    with pytest.raises(InsufficientQuantity):
        transaction_delete(transaction_row=first.transaction)
    assert figures(position(main)) == before
    transaction_delete(transaction_row=second.transaction)  # 10 still cover the sell of 9
    assert position(main).quantity == 1


def test_a_position_sold_to_zero_stays_listed_but_leaves_the_valuation(main):
    transaction_buy(portfolio=main, symbol="AAPL", quantity=D(10), price=D(100), executed_at=day(0))
    transaction_sell(portfolio=main, symbol="AAPL", quantity=D(10), price=D(110), executed_at=day(1))
    assert figures(position(main)) == (D(0), D(0), D(0), D(100), D(0))
    (valuation,) = portfolio_valuations(portfolios=Portfolio.objects.filter(pk=main.pk))
    assert (valuation.positions, valuation.unpriced, valuation.figures.total_value) == (0, 0, 0)
    assert valuation.figures.total_return == D(100)


def test_an_external_id_makes_a_post_idempotent(main):
    data = TransactionInput(type="buy", symbol="AAPL", quantity=D(1), price=D(100), external_id="broker-1")
    first = transaction_record(portfolio=main, data=data)
    again = transaction_record(portfolio=main, data=data)
    assert (first.created, again.created) == (True, False)
    assert again.transaction.pk == first.transaction.pk
    assert position(main).quantity == 1


def test_bad_input_and_a_foreign_currency_without_rate_are_refused(main):
    with pytest.raises(TransactionInvalid) as bad:
        transaction_record(portfolio=main, data=TransactionInput(type="sell", symbol="AAPL", quantity=D(-1)))
    assert set(bad.value.errors) == {"quantity", "price"}
    with pytest.raises(TransactionInvalid):
        transaction_record(portfolio=main, data=TransactionInput(type="split", symbol="AAPL", ratio="2-1"))
    with pytest.raises(TransactionInvalid):  # the asset trades in USD
        transaction_buy(portfolio=main, symbol="AAPL", quantity=D(1), price=D(1), currency="EUR")
    with pytest.raises(FxUnavailable):  # EURUSD=X has no quote yet
        transaction_buy(portfolio=main, symbol="SAP.DE", quantity=D(1), price=D(100))
    assert not Transaction.objects.exists()
    given = transaction_buy(portfolio=main, symbol="SAP.DE", quantity=D(1), price=D(100), fx_rate=D("1.08"))
    assert (given.transaction.currency, position(main, "SAP.DE").cost_basis) == ("EUR", D(108))


def test_the_latest_rate_is_recorded_when_none_is_given(main):
    quote_set("EURUSD=X", "1.100000", "1.090000")
    recorded = transaction_buy(portfolio=main, symbol="SAP.DE", quantity=D(2), price=D(100), fee=D(1))
    assert recorded.transaction.fx_rate == D("1.1")
    assert position(main, "SAP.DE").cost_basis == D("221.1")  # (200 + 1) * 1.1


def test_a_position_written_outside_the_ledger_is_adopted_as_an_opening_buy(main):
    legacy = hold(main, "AAPL", "3", "90")
    transaction_buy(portfolio=main, symbol="AAPL", quantity=D(1), price=D(130))
    assert figures(position(main)) == (D(4), D(100), D(400), D(0), D(0))
    opening = Transaction.objects.filter(portfolio=main).order_by("executed_at").first()
    assert opening is not None
    assert (opening.quantity, opening.price, opening.fx_rate) == (D(3), D(90), D(1))
    assert position(main).pk == legacy.pk


def test_every_ledger_change_asks_for_a_revaluation(main):
    told: list[int] = []

    def receiver(*, portfolio_id: int, **_: object) -> None:
        told.append(portfolio_id)

    portfolio_changed.connect(receiver, dispatch_uid="test-ledger")
    try:
        recorded = transaction_buy(portfolio=main, symbol="AAPL", quantity=D(1), price=D(100))
        transaction_fee(portfolio=main, amount=D(1))
        transaction_delete(transaction_row=recorded.transaction)
    finally:
        portfolio_changed.disconnect(dispatch_uid="test-ledger")
    assert told == [main.pk] * 3
