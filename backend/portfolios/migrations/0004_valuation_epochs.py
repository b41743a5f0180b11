"""Previous-valuation prices move off the position rows (issue 4).

`Position.last_valued_price` was rewritten on every position whose price moved: 200,000 rows
per full refresh. Now a pass records its prices once (ValuationEpoch + ValuedPrice) and each
portfolio it stores points at that epoch; `Position.valued` says whether a position took part.
Existing prices are carried over exactly: one epoch per valued portfolio, holding its
positions' last valued prices.

On PostgreSQL also:
- portfolios_position back to fillfactor 100 (no more per-refresh updates: denser scans),
- portfolios_portfolio at fillfactor 50, so each refresh's UPDATE of the cached figures is a
  HOT update (no index entries written),
- tf_round_half_even(numeric, int): the model's ROUND_HALF_EVEN for the in-database pass
  (PostgreSQL's round() goes half away from zero). Not STRICT, so the planner inlines it.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

ROUND_HALF_EVEN_SQL = """
CREATE OR REPLACE FUNCTION tf_round_half_even(x numeric, places integer) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN abs(x - trunc(x, places)) * power(10::numeric, places) = 0.5
         AND mod(trunc(x * power(10::numeric, places)), 2) = 0
    THEN trunc(x, places)
    ELSE round(x, places)
  END
$$
"""


def _postgres(forward_sql: list[str], backward_sql: list[str]):
    def run(sql: list[str]):
        def apply(apps, schema_editor):
            if schema_editor.connection.vendor == "postgresql":
                for statement in sql:
                    schema_editor.execute(statement)

        return apply

    return migrations.RunPython(run(forward_sql), run(backward_sql), elidable=False)


def last_valued_prices_to_epochs(apps, schema_editor):
    Position = apps.get_model("portfolios", "Position")
    Portfolio = apps.get_model("portfolios", "Portfolio")
    ValuationEpoch = apps.get_model("portfolios", "ValuationEpoch")
    ValuedPrice = apps.get_model("portfolios", "ValuedPrice")
    by_portfolio: dict[int, list[tuple[int, object]]] = {}
    rows = Position.objects.filter(last_valued_price__isnull=False).values_list(
        "portfolio_id", "asset_id", "last_valued_price"
    )
    for portfolio_id, asset_id, price in rows.iterator():
        by_portfolio.setdefault(portfolio_id, []).append((asset_id, price))
    for portfolio_id, prices in by_portfolio.items():
        valued_at = Portfolio.objects.filter(pk=portfolio_id).values_list("valued_at", flat=True).get()
        epoch = ValuationEpoch.objects.create(created_at=valued_at or timezone.now())
        ValuedPrice.objects.bulk_create(ValuedPrice(epoch=epoch, asset_id=a, price=p) for a, p in prices)
        Portfolio.objects.filter(pk=portfolio_id).update(valued_epoch=epoch.pk)
    Position.objects.filter(last_valued_price__isnull=False).update(valued=True)


def epochs_to_last_valued_prices(apps, schema_editor):
    Position = apps.get_model("portfolios", "Position")
    ValuedPrice = apps.get_model("portfolios", "ValuedPrice")
    for position in Position.objects.filter(valued=True).select_related("portfolio"):
        price = (
            ValuedPrice.objects.filter(epoch_id=position.portfolio.valued_epoch, asset_id=position.asset_id)
            .values_list("price", flat=True)
            .first()
        )
        Position.objects.filter(pk=position.pk).update(last_valued_price=price)


class Migration(migrations.Migration):
    dependencies = [
        ("market", "0002_refreshrun_applied_attempts"),
        ("portfolios", "0003_position_fillfactor_for_hot_updates"),
    ]

    operations = [
        migrations.CreateModel(
            name="ValuationEpoch",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("created_at", models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name="ValuedPrice",
            fields=[
                (
                    "epoch",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="prices",
                        to="portfolios.valuationepoch",
                    ),
                ),
                (
                    "asset",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="valued_prices",
                        to="market.asset",
                    ),
                ),
                ("price", models.DecimalField(decimal_places=6, max_digits=20)),
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "epoch", "asset", blank=True, editable=False, primary_key=True, serialize=False
                    ),
                ),
            ],
        ),
        migrations.AddField(
            model_name="portfolio",
            name="valued_epoch",
            field=models.BigIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="position",
            name="valued",
            field=models.BooleanField(db_default=False, default=False, editable=False),
        ),
        migrations.RunPython(last_valued_prices_to_epochs, epochs_to_last_valued_prices),
        migrations.RemoveField(model_name="position", name="last_valued_price"),
        migrations.AddIndex(
            model_name="position",
            index=models.Index(condition=models.Q(("valued", False)), fields=["portfolio"], name="position_not_valued"),
        ),
        migrations.RemoveIndex(model_name="portfoliosnapshot", name="snapshot_portfolio_recent"),
        migrations.AlterField(
            model_name="portfoliosnapshot",
            name="portfolio",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="snapshots",
                to="portfolios.portfolio",
            ),
        ),
        _postgres(
            [
                "ALTER TABLE portfolios_position SET (fillfactor = 100)",
                "ALTER TABLE portfolios_portfolio SET (fillfactor = 50)",
                ROUND_HALF_EVEN_SQL,
            ],
            [
                "ALTER TABLE portfolios_position SET (fillfactor = 50)",
                "ALTER TABLE portfolios_portfolio RESET (fillfactor)",
                "DROP FUNCTION IF EXISTS tf_round_half_even(numeric, integer)",
            ],
        ),
    ]
