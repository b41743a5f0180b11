from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from backend.portfolios.demo import demo_data_seed


class Command(BaseCommand):
    help = "Load demo assets and two portfolios' ledgers for the demo user (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        result = demo_data_seed(with_logins=settings.DEMO_LOGINS)
        self.stdout.write(
            f"seed_demo: {result.assets_created} assets, {result.portfolios_created} portfolios, "
            f"{result.transactions_created} transactions created"
            + ("; logins admin/admin and demo/demo" if settings.DEMO_LOGINS else "")
        )
