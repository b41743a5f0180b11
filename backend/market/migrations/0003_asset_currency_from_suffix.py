"""Existing assets left at the default currency take their exchange suffix's (`.L` GBp,
`.DE` EUR, ...; backend/market/currency.py). Nothing else changes."""

from django.db import migrations
from django.db.models import Q


def currencies_from_suffix(apps, schema_editor):
    from backend.market.currency import DEFAULT_CURRENCY, currency_for_symbol

    Asset = apps.get_model("market", "Asset")
    candidates = Asset.objects.filter(currency=DEFAULT_CURRENCY).filter(
        Q(symbol__contains=".") | Q(symbol__endswith="=X")
    )
    for pk, symbol in candidates.values_list("pk", "symbol").iterator():
        currency = currency_for_symbol(symbol)
        if currency != DEFAULT_CURRENCY:
            Asset.objects.filter(pk=pk).update(currency=currency)


class Migration(migrations.Migration):
    dependencies = [("market", "0002_refreshrun_applied_attempts")]

    operations = [migrations.RunPython(currencies_from_suffix, migrations.RunPython.noop)]
