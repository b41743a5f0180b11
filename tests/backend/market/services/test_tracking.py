"""assets_ensure: assets for symbols a caller fetches itself, created in bulk, nothing enqueued."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backend.market.models import Asset
from backend.market.services.tracking import assets_ensure
from backend.market.signals import price_batches_dispatched
from backend.market.symbols import InvalidSymbol

pytestmark = pytest.mark.django_db


def test_assets_ensure_creates_the_new_ones_keeps_the_known_ones_and_answers_in_the_order_asked():
    known = Asset.objects.create(symbol="AAPL", tracking_status=Asset.TrackingStatus.TRACKED)
    sent: list[object] = []

    def receiver(**kwargs: object) -> None:
        sent.append(kwargs)

    price_batches_dispatched.connect(receiver, dispatch_uid="test-tracking")
    try:
        assets = assets_ensure(symbols=["newco", "AAPL", " brk/b ", "NEWCO"])
    finally:
        price_batches_dispatched.disconnect(dispatch_uid="test-tracking")
    assert [a.symbol for a in assets] == ["NEWCO", "AAPL", "BRK/B"]
    assert assets[1].pk == known.pk
    assert assets[1].tracking_status == Asset.TrackingStatus.TRACKED  # untouched
    assert Asset.objects.get(symbol="NEWCO").tracking_status == Asset.TrackingStatus.PENDING
    assert sent == []  # nothing enqueued: the caller fetches


def test_assets_ensure_of_many_new_symbols_is_a_few_queries_not_one_per_symbol():
    symbols = [f"N{i:03d}" for i in range(60)]
    with CaptureQueriesContext(connection) as queries:
        assets = assets_ensure(symbols=symbols)
    assert len(assets) == 60
    assert len(queries) <= 3
    assert Asset.objects.count() == 60


def test_assets_ensure_refuses_a_malformed_symbol_before_creating_any():
    with pytest.raises(InvalidSymbol):
        assets_ensure(symbols=["GOOD", "not ok"])
    assert not Asset.objects.exists()


def test_assets_ensure_of_nothing_is_nothing():
    assert assets_ensure(symbols=[]) == []
