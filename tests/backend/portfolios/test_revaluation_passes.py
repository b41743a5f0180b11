"""The PostgreSQL pass (one statement) and the ORM pass (SQLite's) are interchangeable: run on
the same portfolios in the same state, they store the same figures to the last digit, record
the same prices, mark the same positions, snapshot the same rows and build the same events;
with positions in other currencies (pairs, a minor unit, a pair with no rate) and ledger
figures (realized gains, dividends, fees, a position sold to zero)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction

from backend.market.models import Asset
from backend.portfolios.models import Portfolio, PortfolioSnapshot, Position, ValuedPrice
from backend.portfolios.services import revaluation
from backend.portfolios.services.revaluation import Audience, RevalueResult, orm_pass, sql_pass
from backend.portfolios.services.transactions import (
    transaction_buy,
    transaction_dividend,
    transaction_fee,
    transaction_sell,
)
from backend.portfolios.valuation import FIGURE_FIELDS

from .conftest import hold, quote_set

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement pass: PostgreSQL"),
]
T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


@pytest.fixture
def portfolios(three_portfolios, ann, bob) -> list[Portfolio]:
    """Gains: fractional BTC, NVDA without a previous close. Loss: NEWCO unpriced, AAPL at
    zero cost. Large: figures of 10^8. Gift: nothing but zero-cost positions. Thirds: ratios
    that do not terminate. Dust: a position too small to move the figures at 10 places.
    Pending: nothing priced. Empty: no positions."""
    quote_set("DUST", "0.300000")  # no previous close: no change today
    gift = Portfolio.objects.create(owner=bob, name="Gift")
    hold(gift, "NVDA", "2", "0")
    hold(gift, "KO", "1.0000000001", "0")
    thirds = Portfolio.objects.create(owner=ann, name="Thirds")
    hold(thirds, "KO", "3", "7")
    hold(thirds, "AAPL", "0.3333333333", "150.00")
    dust = Portfolio.objects.create(owner=bob, name="Dust")
    hold(dust, "DUST", "0.0000000001", "0")  # worth 3e-11, a gift: every figure stays 0
    pending = Portfolio.objects.create(owner=ann, name="Pending")
    hold(pending, "NEWCO", "3", "5")
    empty = Portfolio.objects.create(owner=bob, name="Empty")
    return [*three_portfolios.values(), gift, thirds, dust, pending, empty, *currencies(ann, bob)]


def currencies(ann, bob) -> list[Portfolio]:
    """World (USD): euros, pence, yen without a rate, a sale, a dividend, a fee, a position
    sold to zero. Pounds (GBP): pence without a pair (x 0.01) and euros through EURGBP=X."""
    d = Decimal
    quote_set("SAP.DE", "160.123456", "158.500000")
    quote_set("EURUSD=X", "1.087654", "1.081234")
    quote_set("VOD.L", "72.345678", "71.990000")
    quote_set("GBPUSD=X", "1.254321", "1.261234")
    quote_set("EURGBP=X", "0.856789")  # no previous close: no change today
    quote_set("7203.T", "2500.000000", "2490.000000")  # JPYUSD=X has no quote: no rate
    world = Portfolio.objects.create(owner=ann, name="World")
    transaction_buy(
        portfolio=world,
        symbol="SAP.DE",
        quantity=d("3.3333333333"),
        price=d("150.123456"),
        fee=d("1.5"),
        fx_rate=d("1.0712345678"),
    )
    transaction_sell(
        portfolio=world, symbol="SAP.DE", quantity=d(1), price=d(155), fee=d("0.5"), fx_rate=d("1.0823456789")
    )
    transaction_buy(portfolio=world, symbol="VOD.L", quantity=d("1234.5"), price=d("70.5"), fx_rate=d("0.012654321"))
    transaction_dividend(portfolio=world, symbol="VOD.L", amount=d("123.45"), fx_rate=d("0.0125"))
    transaction_fee(portfolio=world, amount=d("9.99"))
    transaction_buy(portfolio=world, symbol="7203.T", quantity=d(100), price=d(2400), fx_rate=d("0.0067"))
    transaction_buy(portfolio=world, symbol="KO", quantity=d(1), price=d(50))
    transaction_sell(portfolio=world, symbol="KO", quantity=d(1), price=d(61))  # closed: realized 11
    pounds = Portfolio.objects.create(owner=bob, name="Pounds", base_currency="GBP")
    transaction_buy(portfolio=pounds, symbol="VOD.L", quantity=d(100), price=d(70))
    transaction_buy(portfolio=pounds, symbol="SAP.DE", quantity=d(2), price=d(150))
    return [world, pounds]


def stored() -> dict[str, Any]:
    """Everything a revaluation writes, without the ids a sequence hands out."""
    epochs = dict(Portfolio.objects.values_list("pk", "valued_epoch"))
    prices: dict[int, list[tuple[int, Any]]] = {}
    for epoch, asset, price in ValuedPrice.objects.order_by("epoch_id", "asset_id").values_list(
        "epoch_id", "asset_id", "price"
    ):
        prices.setdefault(epoch, []).append((asset, price))
    return {
        "figures": list(Portfolio.objects.order_by("pk").values_list("pk", *FIGURE_FIELDS, "valued_at")),
        "prices": {pk: prices.get(epoch) if epoch else None for pk, epoch in epochs.items()},
        "snapshots": list(
            PortfolioSnapshot.objects.order_by("portfolio_id", "valued_at").values_list(
                "portfolio_id", "valued_at", "total_value", "total_cost", "daily_change"
            )
        ),
        "valued": list(Position.objects.order_by("pk").values_list("pk", "valued")),
    }


def told(result: RevalueResult) -> dict[str, Any]:
    """The result, its events without the time each was built."""
    return {
        "counts": (result.portfolios_revalued, result.portfolios_changed, result.snapshots_created),
        "positions_read": result.positions_read,
        "revalued": result.revalued,  # Decimal figures and moved positions, as stored
        "events": [{k: v for k, v in event.items() if k != "timestamp"} for event in result.events],
    }


def both_passes(monkeypatch, run: Callable[[], RevalueResult]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`run` with the SQL pass (then rolled back) and with the ORM pass (kept for the next
    step), from the same state."""

    def with_pass(share_pass: revaluation.SharePass) -> dict[str, Any]:
        monkeypatch.setattr(revaluation, "share_pass", lambda vendor: share_pass)
        result = run()
        return {**told(result), **stored()}

    with transaction.atomic():
        sql = with_pass(sql_pass.share_revalue)
        transaction.set_rollback(True)
    return sql, with_pass(orm_pass.share_revalue)


def test_the_sql_and_orm_passes_store_identical_figures_and_build_identical_events(portfolios, monkeypatch):
    ids = [p.pk for p in portfolios]

    def by_ids(now: datetime) -> Callable[[], RevalueResult]:
        return lambda: revaluation.portfolios_revalue(portfolio_ids=ids, now=now, audience=Audience.EVERYONE)

    # The first revaluation: nothing stored before, no previous prices.
    sql, orm = both_passes(monkeypatch, by_ids(T0))
    assert sql == orm
    assert orm["counts"] == (10, 10, 10)  # Empty's zeros are stored too (its figures were NULL)
    world = next(r for r in orm["revalued"] if r.valuation.name == "World")
    assert (world.valuation.unpriced, world.valuation.positions) == (1, 3)  # yen: no rate; KO: closed
    assert world.valuation.ledger.fees == Decimal("9.99")

    # Every price moves (a full refresh: the shares are id spans), MSFT and BTC by more than
    # 1 %, DUST too little to move Dust's figures at 10 places; NVDA gets a previous close;
    # a position is added.
    quote_set("MSFT", "420.25", "415.75")
    quote_set("BTC-USD", "66000.000001", "63000.000000")
    quote_set("NVDA", "881.00", "870.00")
    quote_set("KO", "60.10", "59.00")
    quote_set("DUST", "0.300001")
    hold(portfolios[1], "KO", "0.5", "61")
    held = sorted(set(Position.objects.values_list("asset__symbol", flat=True)))
    sql, orm = both_passes(
        monkeypatch,
        lambda: revaluation.portfolios_revalue_for_symbols(
            symbols=held, now=T0 + timedelta(seconds=30), audience=Audience.EVERYONE
        ),
    )
    assert sql == orm
    dust = next(r for r in orm["revalued"] if r.valuation.name == "Dust")
    assert not dust.value_changed  # stored for its price alone: no snapshot
    assert [row for row in orm["snapshots"] if row[0] == dust.valuation.portfolio_id and row[1] != T0] == []
    assert [p.symbol for p in dust.positions] == ["DUST"]
    assert {e["type"] for e in orm["events"]} == {"portfolio_update", "position_update"}

    # Only a pair moves: the portfolios it converts (World's SAP.DE), no other.
    quote_set("EURUSD=X", "1.099999", "1.081234")
    sql, orm = both_passes(
        monkeypatch,
        lambda: revaluation.portfolios_revalue_for_symbols(
            symbols=["EURUSD=X"], now=T0 + timedelta(seconds=45), audience=Audience.EVERYONE
        ),
    )
    assert sql == orm
    assert [r.valuation.name for r in orm["revalued"]] == ["World"]
    assert [p.symbol for p in orm["revalued"][0].positions] == ["SAP.DE"]

    # The same prices again: neither stores nor tells anything.
    sql, orm = both_passes(monkeypatch, by_ids(T0 + timedelta(minutes=1)))
    assert sql == orm
    assert orm["counts"][1:] == (0, 0)
    assert orm["events"] == []


def test_the_passes_agree_at_the_packing_bounds_of_converted_sums(ann, bob, monkeypatch):
    """Prices are converted before the one packed sum per portfolio and base: values as large
    as the ORM pass's 28-digit context allows (10^17), with 24 decimals, in two bases in one
    share, come out of it exact."""
    quote_set("EURGBP=X", "0.856789", "0.851234")
    quote_set("EURUSD=X", "1.087654", "1.081234")
    quote_set("SAP.DE", "99999999.999999", "99999998.123457")
    quote_set("VOD.L", "72.345679", "71.990001")
    Asset.objects.filter(symbol="SAP.DE").update(currency="EUR")
    Asset.objects.filter(symbol="VOD.L").update(currency="GBp")
    pounds = Portfolio.objects.create(owner=ann, name="Big pounds", base_currency="GBP")
    hold(pounds, "SAP.DE", "5000000000.1234567891", "1.000001")
    hold(pounds, "VOD.L", "0.0000000001", "70.5")
    dollars = Portfolio.objects.create(owner=bob, name="Big dollars", base_currency="USD")
    hold(dollars, "SAP.DE", "4000000000.0000000001", "99999999.999999")
    ids = [pounds.pk, dollars.pk]

    sql, orm = both_passes(
        monkeypatch,
        lambda: revaluation.portfolios_revalue(portfolio_ids=ids, now=T0, audience=Audience.EVERYONE),
    )

    assert sql == orm
    values = {pk: value for pk, value, *_ in orm["figures"]}
    assert values[pounds.pk] > Decimal("4e17")
    assert values[dollars.pk] > Decimal("4e17")
