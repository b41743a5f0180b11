"""Revaluation after a price batch: only the affected portfolios, stored once, their events
returned for the caller to publish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backend.portfolios.models import Portfolio, PortfolioSnapshot, Position
from backend.portfolios.services import revaluation

from .conftest import hold, quote_set

pytestmark = pytest.mark.django_db


def test_first_run_stores_figures_snapshot_and_last_valued_prices(three_portfolios):
    result = revaluation.portfolios_revalue_for_symbols(symbols=["AAPL"])
    assert result.portfolios_revalued == 2  # Gains and Loss hold AAPL; Large does not
    gains = Portfolio.objects.get(name="Gains")
    assert gains.total_value is not None
    assert gains.total_value.quantize(Decimal("0.01")) == Decimal("36670.06")
    assert gains.valued_at is not None
    assert PortfolioSnapshot.objects.filter(portfolio=gains).count() == 1
    assert Position.objects.get(portfolio=gains, asset__symbol="BTC-USD").last_valued_price == Decimal("64250.123456")
    assert Position.objects.get(asset__symbol="NEWCO").last_valued_price is None  # no quote, nothing valued
    assert Portfolio.objects.get(name="Large").valued_at is None
    kinds = sorted((e["type"], e["group"]) for e in result.events)
    assert kinds == [
        ("portfolio_update", f"portfolio.{gains.pk}"),
        ("portfolio_update", f"portfolio.{three_portfolios['loss'].pk}"),
    ]  # first valuation: no previous price, so no position moved "significantly"
    update = next(e for e in result.events if e["group"] == f"portfolio.{gains.pk}")["data"]
    assert update["total_value"] == 36670.06
    assert update["daily_change_percent"] == 1.80
    assert update["value_changed"] is True
    assert [p["symbol"] for p in update["positions_updated"]] == ["AAPL", "BTC-USD", "NVDA"]


def test_second_run_on_the_same_prices_stores_nothing_and_has_no_events(three_portfolios):
    revaluation.portfolios_revalue_for_symbols(symbols=["AAPL", "BTC-USD"])
    before = list(Portfolio.objects.order_by("pk").values_list("pk", "valued_at", "updated_at"))
    snapshots = PortfolioSnapshot.objects.count()
    with CaptureQueriesContext(connection) as queries:
        result = revaluation.portfolios_revalue_for_symbols(symbols=["AAPL", "BTC-USD"])
    assert result.portfolios_revalued == 3
    assert result.portfolios_changed == 0
    assert result.events == []
    assert PortfolioSnapshot.objects.count() == snapshots
    assert list(Portfolio.objects.order_by("pk").values_list("pk", "valued_at", "updated_at")) == before
    # No write statement; the PostgreSQL pass (one WITH statement) writes no row either
    # (test_revaluation_pass.test_a_rerun_on_the_same_prices_writes_no_row_and_records_no_epoch).
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT"))]
    assert writes == []


def test_only_portfolios_holding_changed_symbols_are_revalued(three_portfolios):
    revaluation.portfolios_revalue(portfolio_ids=[p.pk for p in three_portfolios.values()])
    large_valued_at = Portfolio.objects.get(name="Large").valued_at
    quote_set("MSFT", "420.25", "415.75")  # only Loss holds MSFT
    with CaptureQueriesContext(connection) as queries:
        result = revaluation.portfolios_revalue_for_symbols(symbols=["MSFT"])
    # Whether every held asset changed (no: AAPL, BTC-USD... did not), the holders, then one
    # share: ONE statement (lock, aggregate, store, snapshot, the moved positions of listened
    # portfolios), then the look for epochs no portfolio points at any more (none: Gains and
    # Large still point at the first run's). On SQLite the ORM pass takes a few more.
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    statements = [s for s in statements if not s.startswith("SET LOCAL")]
    if connection.vendor == "postgresql":
        assert len(statements) == 4, "\n".join(s[:160] for s in statements)
        assert sum(s.lstrip().startswith("WITH prices") for s in statements) == 1
    assert result.portfolios_revalued == 1
    assert Portfolio.objects.get(name="Large").valued_at == large_valued_at
    assert Portfolio.objects.get(name="Gains").valued_at == large_valued_at
    loss = Portfolio.objects.get(name="Loss")
    assert loss.valued_at is not None
    assert large_valued_at is not None
    assert loss.valued_at > large_valued_at
    assert loss.total_value is not None
    assert loss.daily_change is not None
    # MSFT 20*420.25 = 8405.00 (+90.00) + AAPL 476.25 (+6.25)
    assert loss.total_value.quantize(Decimal("0.01")) == Decimal("8881.25")
    assert loss.daily_change.quantize(Decimal("0.01")) == Decimal("96.25")
    batch = result.events
    assert [(e["type"], e["group"]) for e in batch] == [
        ("portfolio_update", f"portfolio.{loss.pk}"),
        ("position_update", f"user.{loss.owner_id}"),  # 410.25 -> 420.25 is +2.4 %
    ]
    assert batch[0]["data"]["positions_updated"] == [
        {"symbol": "MSFT", "quantity": 20.0, "current_price": 420.25, "current_value": 8405.0, "daily_change": 90.0}
    ]
    assert batch[1]["data"] == {
        "portfolio_id": loss.pk,
        "symbol": "MSFT",
        "quantity": 20.0,
        "current_price": 420.25,
        "current_value": 8405.0,
        "daily_change": 90.0,
        "total_return": -595.0,  # 8405 - 9000
        "total_return_percent": -6.61,  # -595 / 9000 * 100 = -6.6111...
        "significant_change": True,
        "currency": "USD",
        "fx_rate": 1.0,
        "cost_basis": 9000.0,
    }


def test_a_move_under_one_percent_tells_the_portfolio_but_no_position_update(three_portfolios):
    revaluation.portfolios_revalue(portfolio_ids=[three_portfolios["loss"].pk])
    quote_set("MSFT", "414.35", "415.75")  # +1.0 % exactly of 410.25 is 4.1025: 4.10 is under it
    result = revaluation.portfolios_revalue_for_symbols(symbols=["MSFT"])
    assert [e["type"] for e in result.events] == ["portfolio_update"]
    assert Position.objects.get(asset__symbol="MSFT").last_valued_price == Decimal("414.35")


def test_snapshot_rows_follow_each_change(three_portfolios):
    loss = three_portfolios["loss"]
    t0 = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
    revaluation.portfolios_revalue(portfolio_ids=[loss.pk], now=t0)
    quote_set("MSFT", "400.00", "415.75")
    revaluation.portfolios_revalue(portfolio_ids=[loss.pk], now=t0 + timedelta(seconds=30))
    revaluation.portfolios_revalue(portfolio_ids=[loss.pk], now=t0 + timedelta(seconds=60))  # nothing moved
    values = list(
        PortfolioSnapshot.objects.filter(portfolio=loss).order_by("valued_at").values_list("total_value", flat=True)
    )
    assert [v.quantize(Decimal("0.01")) for v in values] == [Decimal("8681.25"), Decimal("8476.25")]


def test_removing_the_last_position_revalues_to_zero(three_portfolios):
    large = three_portfolios["large"]
    revaluation.portfolios_revalue(portfolio_ids=[large.pk])
    Position.objects.filter(portfolio=large).delete()
    result = revaluation.portfolios_revalue(portfolio_ids=[large.pk])
    large.refresh_from_db()
    assert result.portfolios_changed == 1
    assert large.total_value == 0
    assert large.total_return_percent == 0


def test_a_position_added_later_is_valued_and_listed(three_portfolios):
    gains = three_portfolios["gains"]
    revaluation.portfolios_revalue(portfolio_ids=[gains.pk])
    hold(gains, "KO", "10", "50")
    batch = revaluation.portfolios_revalue(portfolio_ids=[gains.pk]).events
    assert [p["symbol"] for p in batch[0]["data"]["positions_updated"]] == ["KO"]
    assert batch[0]["data"]["total_value"] == 37270.06  # + 10*60


def test_a_full_refresh_revalues_every_portfolio_with_positions_without_looking_up_holders(three_portfolios, ann):
    empty = Portfolio.objects.create(owner=ann, name="Empty")
    held = sorted(set(Position.objects.values_list("asset__symbol", flat=True)))
    assert revaluation.holdings_all_among(symbols=held)
    assert not revaluation.holdings_all_among(symbols=held[1:])
    with CaptureQueriesContext(connection) as queries:
        result = revaluation.portfolios_revalue_for_symbols(symbols=held)
    assert result.portfolios_revalued == 3
    assert Portfolio.objects.get(pk=empty.pk).valued_at is None  # holds nothing: not revalued
    assert Portfolio.objects.filter(valued_at__isnull=False).count() == 3
    gains = Portfolio.objects.get(name="Gains")
    assert gains.total_value is not None
    assert gains.total_value.quantize(Decimal("0.01")) == Decimal("36670.06")
    if connection.vendor == "postgresql":  # the statement finds the holders itself
        holders = [q for q in queries.captured_queries if q["sql"].startswith('SELECT DISTINCT "portfolios_position"')]
        assert holders == []
