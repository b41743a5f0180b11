"""A new holding's history backfill on a REAL Celery worker (simulated source, real
PostgreSQL and Redis): the first buy of a symbol with no history loads its daily closes and
its FX pair's once; another portfolio opening the same symbol enqueues nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis
from django.contrib.auth.models import User

from backend.market.models import PriceHistory
from backend.portfolios.models import Portfolio
from backend.portfolios.services.transactions import transaction_buy
from config.celery import app
from tasks.history import backfill_marker
from tests.live import celery_worker
from tests.tasks.prices_helpers import wait_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
D = Decimal
DAYS = 20


@pytest.fixture
def markers(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    for key in redis_client.scan_iter(match="tf:history:*"):
        redis_client.delete(key)
    yield redis_client
    for key in redis_client.scan_iter(match="tf:history:*"):
        redis_client.delete(key)


def bar_counts() -> dict[str, int]:
    rows = PriceHistory.objects.values_list("asset__symbol", flat=True)
    return {symbol: list(rows).count(symbol) for symbol in set(rows)}


def queued_backfills(client: redis.Redis) -> int:
    return sum(b"backfill_history" in message for message in client.lrange("celery", 0, -1))


def test_a_new_holding_is_backfilled_once_with_its_pair_on_a_real_worker(markers):
    ann, bob = User.objects.create_user("ann"), User.objects.create_user("bob")
    first = Portfolio.objects.create(owner=ann, name="Europe", base_currency="USD")
    with celery_worker(MARKET_DATA_SOURCES="simulated", HISTORY_BACKFILL_DAYS=str(DAYS)) as worker:
        transaction_buy(portfolio=first, symbol="SAP.DE", quantity=D(10), price=D(150), fx_rate=D("1.05"))
        wait_for(lambda: bar_counts().get("SAP.DE", 0) >= DAYS, timeout=60, what="SAP.DE's history")
        wait_for(lambda: bar_counts().get("EURUSD=X", 0) >= DAYS, timeout=30, what="EURUSD=X's history")
        assert markers.exists(backfill_marker("SAP.DE"), backfill_marker("EURUSD=X")) == 2

        # The symbol is marked done: another portfolio's first buy enqueues nothing.
        second = Portfolio.objects.create(owner=bob, name="Also", base_currency="USD")
        transaction_buy(portfolio=second, symbol="SAP.DE", quantity=D(1), price=D(151), fx_rate=D("1.05"))
        assert queued_backfills(markers) == 0
        # And the task itself, run again, claims nothing and writes nothing.
        before = bar_counts()
        result = app.send_task("tasks.history.backfill_history", kwargs={"symbols": ["SAP.DE"]}).get(timeout=30)
        assert result == {"claimed": 0, "inserted": 0, "failed": 0}
        assert bar_counts() == before
        # Received twice: the first buy's and the one sent just now (the second buy's none).
        assert (
            len([line for line in worker.log().splitlines() if "backfill_history[" in line and "received" in line]) == 2
        )
        assert worker.log().count("history backfill:") == 1  # one load, by the first buy's task
        assert "Traceback" not in worker.log()  # before the stop, whose SIGTERM logs one
    # The simulated closes of every day, the pinned reference path's (SAP.DE trades in euros).
    sap = PriceHistory.objects.filter(asset__symbol="SAP.DE", source="simulated")
    assert all(D(100) < price < D(400) for price in sap.values_list("price", flat=True))
