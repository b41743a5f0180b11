"""The PostgreSQL pass (one statement) and the ORM pass (SQLite's) are interchangeable: run on
the same portfolios in the same state, they store the same figures to the last digit, record
the same prices, mark the same positions, snapshot the same rows and build the same events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection, transaction

from backend.portfolios.models import Portfolio, PortfolioSnapshot, Position, ValuedPrice
from backend.portfolios.services import revaluation
from backend.portfolios.services.revaluation import Audience, RevalueResult, orm_pass, sql_pass
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
    return [*three_portfolios.values(), gift, thirds, dust, pending, empty]


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
    assert orm["counts"] == (8, 8, 8)  # Empty's zeros are stored too (its figures were NULL)

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

    # The same prices again: neither stores nor tells anything.
    sql, orm = both_passes(monkeypatch, by_ids(T0 + timedelta(minutes=1)))
    assert sql == orm
    assert orm["counts"][1:] == (0, 0)
    assert orm["events"] == []
