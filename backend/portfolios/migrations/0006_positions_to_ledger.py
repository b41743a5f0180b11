"""Existing positions become the ledger: one opening `buy` each, at its average cost, fee 0,
fx_rate 1, dated when the position was created, and the position's cost basis (and running
cost in the asset's currency) set as the ledger derives it: quantity * average_cost, rounded
half-even to 10 places. Nothing else changes (quantity and average cost stay). The FX pairs
the holdings need (an asset currency under a different base currency) are created as assets,
pending their first quote, so the next cycle fetches them."""

from decimal import ROUND_HALF_EVEN, Decimal

from django.db import migrations

BATCH = 5_000
PLACES = Decimal("1e-10")
MINOR = {"GBp": "GBP", "GBX": "GBP", "ZAc": "ZAR", "ILA": "ILS"}


def positions_to_ledger(apps, schema_editor):
    Asset = apps.get_model("market", "Asset")
    Position = apps.get_model("portfolios", "Position")
    Transaction = apps.get_model("portfolios", "Transaction")
    rows = (
        Position.objects.filter(cost_basis__isnull=True)
        .order_by("pk")
        .values_list("pk", "portfolio_id", "asset_id", "quantity", "average_cost", "created_at", "asset__currency")
    )
    pending_transactions, pending_positions = [], []

    def flush():
        Transaction.objects.bulk_create(pending_transactions, batch_size=BATCH)
        Position.objects.bulk_update(pending_positions, ["cost_basis", "cost_local"], batch_size=BATCH)
        pending_transactions.clear()
        pending_positions.clear()

    for pk, portfolio_id, asset_id, quantity, average_cost, created_at, currency in rows.iterator(chunk_size=BATCH):
        cost = (quantity * average_cost).quantize(PLACES, rounding=ROUND_HALF_EVEN)
        pending_transactions.append(
            Transaction(
                portfolio_id=portfolio_id,
                asset_id=asset_id,
                type="buy",
                quantity=quantity,
                price=average_cost,
                fee=Decimal(0),
                currency=currency,
                fx_rate=Decimal(1),
                executed_at=created_at,
            )
        )
        pending_positions.append(Position(pk=pk, cost_basis=cost, cost_local=cost))
        if len(pending_positions) >= BATCH:
            flush()
    flush()

    held = Position.objects.values_list("asset__currency", "portfolio__base_currency").distinct()
    for currency, base in held:
        major, base = MINOR.get(currency, currency.upper()), base.upper()
        if major != base:
            Asset.objects.get_or_create(symbol=f"{major}{base}=X", defaults={"currency": base, "asset_type": "other"})


def ledger_to_positions(apps, schema_editor):
    apps.get_model("portfolios", "Transaction").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("portfolios", "0005_ledger")]

    operations = [migrations.RunPython(positions_to_ledger, ledger_to_positions)]
