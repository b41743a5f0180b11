"""Every price refresh rewrites `last_valued_price` of each position whose price moved.
With half of each page kept free, PostgreSQL can make those HOT updates (no index entries
written, the previous versions pruned in place). A no-op elsewhere."""

from django.db import migrations


def _fillfactor(value: int):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE portfolios_position SET (fillfactor = {value})")

    return apply


class Migration(migrations.Migration):
    dependencies = [("portfolios", "0002_position_quote_relation")]

    operations = [migrations.RunPython(_fillfactor(50), _fillfactor(100), elidable=False)]
