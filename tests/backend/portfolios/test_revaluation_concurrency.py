"""Two revaluations of the same portfolio at once (two batches finishing together)."""

from __future__ import annotations

import logging
import threading
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction

from backend.portfolios.models import Portfolio
from backend.portfolios.services.revaluation import portfolios_revalue

from .conftest import quote_set

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks and REPEATABLE READ: PostgreSQL"),
]


def test_a_run_that_waited_for_a_concurrent_one_starts_again_on_fresh_rows(three_portfolios, caplog):
    gains = three_portfolios["gains"]
    portfolios_revalue(portfolio_ids=[gains.pk])
    locked = threading.Event()

    def other_run() -> None:
        try:
            with transaction.atomic():
                Portfolio.objects.select_for_update().filter(pk=gains.pk).update(name="Gains (renamed)")
                locked.set()
                threading.Event().wait(0.5)  # hold the row while the main run asks for it
        finally:
            connections["default"].close()

    thread = threading.Thread(target=other_run)
    thread.start()
    assert locked.wait(10)
    quote_set("AAPL", "200.00", "188.00")
    with caplog.at_level(logging.INFO, logger="backend.portfolios.services.revaluation"):
        result = portfolios_revalue(portfolio_ids=[gains.pk])
    thread.join()
    assert "attempt 2" in caplog.text
    assert result.portfolios_changed == 1
    (revalued,) = result.revalued
    assert revalued.valuation.name == "Gains (renamed)"  # read after the other run committed
    gains.refresh_from_db()
    assert gains.total_value is not None
    assert gains.total_value.quantize(Decimal("0.01")) == Decimal("36765.06")  # + 10 * 9.50
