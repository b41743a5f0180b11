"""quotes_store against the real database and cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection, transaction

from backend.market.models import Asset, PriceHistory, Quote, RefreshRun
from backend.market.selectors import quote_cache_key
from backend.market.services.ingest import QuoteRow, _quotes_write, quotes_store, refresh_run_record
from backend.market.services.sources.base import QuoteData

pytestmark = pytest.mark.django_db

AT = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


def quote(symbol: str, price: str, at: datetime = AT, **extra: object) -> QuoteData:
    return QuoteData(symbol=symbol, price=Decimal(price), source="yahoo", quoted_at=at, **extra)  # type: ignore[arg-type]


def test_store_rounds_to_the_stored_six_places_half_even_and_publishes_what_it_stored():
    Asset.objects.create(symbol="AAA")
    result = quotes_store(quotes=[quote("AAA", "10.12345650", previous_close=Decimal("9.00000049"))])
    stored = Quote.objects.get(asset__symbol="AAA")
    assert stored.price == Decimal("10.123456")  # half-even: ...565|0 -> ...56
    assert stored.previous_close == Decimal("9.000000")
    assert result.payloads["AAA"]["price"] == stored.price
    assert cache.get(quote_cache_key("AAA"))["price"] == stored.price
    assert PriceHistory.objects.get(asset__symbol="AAA").price == stored.price


def test_store_upserts_the_latest_quote_and_adds_one_history_row_per_market_time():
    Asset.objects.create(symbol="AAA")
    Asset.objects.create(symbol="BBB")
    quotes_store(quotes=[quote("AAA", "10"), quote("BBB", "20", volume=5)])
    result = quotes_store(quotes=[quote("AAA", "11", AT + timedelta(minutes=1)), quote("BBB", "20")])
    assert result.changed == ["AAA"]
    assert {q.asset.symbol: q.price for q in Quote.objects.select_related("asset")} == {
        "AAA": Decimal("11"),
        "BBB": Decimal("20"),
    }
    assert PriceHistory.objects.filter(asset__symbol="AAA").count() == 2
    assert PriceHistory.objects.filter(asset__symbol="BBB").count() == 1  # same market time: once
    assert Quote.objects.get(asset__symbol="BBB").volume is None  # the latest quote says nothing of volume


def test_store_never_replaces_a_newer_quote_with_an_older_one():
    Asset.objects.create(symbol="AAA")
    quotes_store(quotes=[quote("AAA", "11", AT + timedelta(minutes=1))])
    result = quotes_store(quotes=[quote("AAA", "10", AT)])
    assert result.stored == []
    assert result.stale == ["AAA"]  # not written, and said so
    assert Quote.objects.get(asset__symbol="AAA").price == Decimal("11")


def test_store_reports_a_quote_for_a_symbol_with_no_asset_instead_of_dropping_it_silently():
    Asset.objects.create(symbol="AAA")
    result = quotes_store(quotes=[quote("AAA", "10"), quote("GHOST", "20")])
    assert result.stored == ["AAA"]
    assert result.missing == ["GHOST"]
    assert not Asset.objects.filter(symbol="GHOST").exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the guarded upsert is the PostgreSQL path")
def test_the_database_keeps_the_newer_quote_when_an_older_write_races_past_the_check():
    # Two batches holding the same symbol (a forced refresh and a retry) both passed the
    # Python check; the later-committing, older one must not win.
    asset = Asset.objects.create(symbol="AAA")
    quotes_store(quotes=[quote("AAA", "11", AT + timedelta(minutes=1))])
    older = QuoteRow(asset.pk, Decimal("10"), None, None, None, None, None, None, None, "yahoo", AT, AT)
    with transaction.atomic():
        _quotes_write([older])
    assert Quote.objects.get(asset__symbol="AAA").price == Decimal("11")
    assert PriceHistory.objects.filter(asset__symbol="AAA").count() == 2  # history keeps both market times


def test_a_run_record_adds_each_attempt_once_and_says_which_attempt_finished_the_run():
    run = RefreshRun.objects.create(batches_total=2)
    assert not refresh_run_record(
        run_id=run.pk, attempt_key="t1:0", succeeded=48, failed={"BAD": "unknown"},
        source_counts={"yahoo": 40, "finnhub": 8}, batch_done=True,
    )  # fmt: skip
    # A redelivered attempt is not counted again.
    assert not refresh_run_record(
        run_id=run.pk, attempt_key="t1:0", succeeded=48, failed={"BAD": "unknown"},
        source_counts={"yahoo": 40}, batch_done=True,
    )  # fmt: skip
    assert refresh_run_record(
        run_id=run.pk, attempt_key="t2:0", succeeded=50, failed={}, source_counts={"yahoo": 50}, batch_done=True
    )
    assert not refresh_run_record(
        run_id=run.pk, attempt_key="t2:1", succeeded=0, failed={"X": "late"}, source_counts={}, batch_done=True
    )  # the run had already finished
    run.refresh_from_db()
    assert (run.symbols_succeeded, run.symbols_failed, run.batches_finished) == (98, 2, 3)
    assert run.source_counts == {"yahoo": 90, "finnhub": 8}
    assert run.errors == {"BAD": "unknown", "X": "late"}
    assert run.applied_attempts == ["t1:0", "t2:0", "t2:1"]
    assert run.finished_at is not None
