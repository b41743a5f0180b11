"""`seed_demo` (run by `make run` on every start, so a second run writes nothing): the demo
assets, logins and ledgers (backend/portfolios/demo.py), the demo watchlist
(backend/dashboard/demo.py) and simulated daily history (docs/history-and-demo.md). It lives
in the dashboard app because the watchlist does."""

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand

from backend.dashboard.demo import demo_watchlist_seed
from backend.portfolios.demo import DEMO_USERNAME, demo_data_seed, demo_history_days, demo_history_seed


class Command(BaseCommand):
    help = (
        "Load demo assets, two portfolios' ledgers and a watchlist for the demo user, and simulated "
        "daily history for the demo assets (idempotent)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = demo_data_seed(with_logins=settings.DEMO_LOGINS)
        watched = demo_watchlist_seed(user_id=User.objects.get(username=DEMO_USERNAME).pk)
        now = datetime.now(UTC)
        history = demo_history_seed(days=demo_history_days(now=now, at_least=settings.HISTORY_BACKFILL_DAYS), now=now)
        self.stdout.write(
            f"seed_demo: {result.assets_created} assets, {result.portfolios_created} portfolios, "
            f"{result.transactions_created} transactions created, {watched} watchlist items added, "
            + (f"{history.inserted} history bars" if history is not None else "no simulated history (real source)")
            + ("; logins admin/admin and demo/demo" if settings.DEMO_LOGINS else "")
        )
