"""Migration 0006: existing positions become the ledger, nothing lost."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("portfolios", "0004_valuation_epochs"), ("market", "0002_refreshrun_applied_attempts")]
AFTER = [("portfolios", "0006_positions_to_ledger"), ("market", "0003_asset_currency_from_suffix")]


@pytest.mark.django_db(transaction=True)
def test_existing_positions_become_one_opening_buy_each():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    user = old.get_model("auth", "User").objects.create(username="old")
    Asset = old.get_model("market", "Asset")
    aapl = Asset.objects.create(symbol="AAPL", currency="USD")
    vod = Asset.objects.create(symbol="VOD.L", currency="USD")  # before the suffix rule
    portfolio = old.get_model("portfolios", "Portfolio").objects.create(owner=user, name="Old")
    Position = old.get_model("portfolios", "Position")
    created = datetime(2025, 6, 1, tzinfo=UTC)
    for asset, quantity, cost in [(aapl, "0.3333333333", "150.123456"), (vod, "100", "72.5")]:
        position = Position.objects.create(
            portfolio=portfolio, asset=asset, quantity=Decimal(quantity), average_cost=Decimal(cost)
        )
        Position.objects.filter(pk=position.pk).update(created_at=created)

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    Position = new.get_model("portfolios", "Position")
    Transaction = new.get_model("portfolios", "Transaction")
    rows = {
        p.asset.symbol: (p.quantity, p.average_cost, p.cost_basis, p.cost_local)
        for p in Position.objects.select_related("asset")
    }
    # 0.3333333333 * 150.123456 = 50.0411519949959552 -> 10 places, half-even
    assert rows["AAPL"] == (
        Decimal("0.3333333333"),
        Decimal("150.123456"),
        Decimal("50.0411519950"),
        Decimal("50.0411519950"),
    )
    assert rows["VOD.L"] == (Decimal(100), Decimal("72.5"), Decimal(7250), Decimal(7250))
    buys = list(
        Transaction.objects.order_by("asset__symbol").values_list(
            "type", "quantity", "price", "fee", "fx_rate", "executed_at", "currency"
        )
    )
    assert buys == [
        ("buy", Decimal("0.3333333333"), Decimal("150.123456"), 0, 1, created, "USD"),
        ("buy", Decimal(100), Decimal("72.5"), 0, 1, created, "GBp"),
    ]
    assert new.get_model("market", "Asset").objects.filter(symbol="GBPUSD=X").exists()  # the pair VOD.L needs


@pytest.fixture(autouse=True)
def _latest_schema_after() -> Iterator[None]:
    # The tests after this one need every migration applied, also those newer than AFTER.
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
