"""Positions follow the ledger whatever order its transactions were posted in, and two
writers posting to one portfolio at once lose nothing."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.portfolios.models import Portfolio, Position, Transaction
from backend.portfolios.services.ledger import position_derive
from backend.portfolios.services.transactions import (
    InsufficientQuantity,
    TransactionInput,
    transaction_buy,
    transaction_record,
    transaction_sell,
)

from .conftest import quote_set

D = Decimal
START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
_names = itertools.count()

quantities = st.decimals(min_value=D("0.0001"), max_value=D(500), places=4)
prices = st.decimals(min_value=D("0.01"), max_value=D(2000), places=2)
fees = st.decimals(min_value=D(0), max_value=D(20), places=2)
rates = st.decimals(min_value=D("0.5"), max_value=D(2), places=4)


@st.composite
def ledgers(draw: st.DrawFn) -> list[TransactionInput]:
    """A valid ledger in chronological order: sells never exceed what is held."""
    held = D(0)
    entries: list[TransactionInput] = []
    for minute in range(draw(st.integers(min_value=1, max_value=12))):
        kind = draw(st.sampled_from(["buy", "buy", "sell", "dividend", "split"] if held else ["buy"]))
        at = START + timedelta(minutes=minute)
        fx_rate = draw(rates)
        if kind == "buy":
            quantity = draw(quantities)
            entries.append(
                TransactionInput("buy", "AAPL", quantity, draw(prices), draw(fees), fx_rate=fx_rate, executed_at=at)
            )
            held += quantity
        elif kind == "sell":
            quantity = min(held, draw(quantities))
            entries.append(
                TransactionInput("sell", "AAPL", quantity, draw(prices), draw(fees), fx_rate=fx_rate, executed_at=at)
            )
            held -= quantity
        elif kind == "dividend":
            entries.append(TransactionInput("dividend", "AAPL", amount=draw(prices), fx_rate=fx_rate, executed_at=at))
        else:
            new, old = draw(st.sampled_from([(2, 1), (3, 1), (1, 2), (3, 2)]))
            entries.append(TransactionInput("split", "AAPL", ratio=f"{new}:{old}", fx_rate=fx_rate, executed_at=at))
            held = (held * new / old).quantize(D("1e-10"))
    return entries


def derived(entries: list[TransactionInput], owner: User) -> tuple[Decimal | None, ...]:
    portfolio = Portfolio.objects.create(owner=owner, name=f"P{next(_names)}")
    for data in entries:
        transaction_record(portfolio=portfolio, data=data)
    position = Position.objects.get(portfolio=portfolio)
    return (
        position.quantity,
        position.average_cost,
        position.cost_basis,
        position.cost_local,
        position.realized_gain,
        position.dividends,
    )


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=ledgers(), order=st.randoms(use_true_random=False))
def test_any_insertion_order_derives_the_same_positions(ann, entries, order):
    """Inserted in another order (with the same executed_at's) the ledger derives the same
    position to the last stored digit. Sells go in last (in any order among themselves), so
    that no moment of the insertion leaves a sell uncovered and is refused; every other
    transaction lands back-dated or not, as the shuffle has it."""
    quote_set("AAPL", "100.00")
    shuffled = entries[:]
    order.shuffle(shuffled)
    shuffled.sort(key=lambda data: data.type == "sell")  # stable: the shuffle stays within each group
    assert derived(shuffled, ann) == derived(entries, ann)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks between connections: PostgreSQL")
def test_two_writers_on_one_portfolio_lose_no_transaction(ann):
    quote_set("AAPL", "100.00")
    portfolio = Portfolio.objects.create(owner=ann, name="Shared")
    transaction_buy(portfolio=portfolio, symbol="AAPL", quantity=D(10), price=D(100))
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def writer(name: str) -> None:
        try:
            start.wait(10)
            for n in range(15):
                transaction_buy(portfolio=portfolio, symbol="AAPL", quantity=D(1), price=D(100 + n))
            # Both try to sell 30 of the 40 there: the lock lets exactly one do it.
            start.wait(10)
            try:
                transaction_sell(portfolio=portfolio, symbol="AAPL", quantity=D(30), price=D(110))
                outcomes.append(f"{name} sold")
            except InsufficientQuantity:
                outcomes.append(f"{name} refused")
        finally:
            connections["default"].close()

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(o.split()[1] for o in outcomes) == ["refused", "sold"]
    assert Transaction.objects.filter(portfolio=portfolio, type="buy").count() == 31
    assert Transaction.objects.filter(portfolio=portfolio, type="sell").count() == 1
    position = Position.objects.get(portfolio=portfolio)
    # 10 + 30 bought, 30 sold; replaying the ledger from scratch gives what was stored.
    assert position.quantity == 10
    stored = (position.quantity, position.cost_basis, position.realized_gain)
    position_derive(portfolio=portfolio, asset_id=position.asset_id)
    position.refresh_from_db()
    assert (position.quantity, position.cost_basis, position.realized_gain) == stored
