"""Storing what the sources answered: latest quotes, history, tracking status, the run record.

Everything here is idempotent: running the same batch twice (a redelivered task) leaves the
same rows, because the latest quote is an upsert and history is unique on (asset, quoted_at).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from backend.market.models import Asset, PriceHistory, Quote, RefreshRun
from backend.market.selectors import asset_update_payload, quote_cache_key

from .sources.base import QuoteData

logger = logging.getLogger(__name__)

QUOTE_FIELDS = [
    "price",
    "previous_close",
    "change",
    "change_percent",
    "volume",
    "high",
    "low",
    "market_cap",
    "source",
    "quoted_at",
    "fetched_at",
]


@dataclass
class StoreResult:
    stored: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)


def quotes_store(*, quotes: Sequence[QuoteData], fetched_at: datetime | None = None) -> StoreResult:
    """Upsert the latest quote and add a history row per symbol; returns which symbols'
    prices changed. A quote older than the one stored is ignored (a late or replayed batch)."""
    result = StoreResult()
    if not quotes:
        return result
    fetched_at = fetched_at or datetime.now(UTC)
    # One query for the assets, their tracking state and their current quote (LEFT JOIN).
    known = Asset.objects.filter(symbol__in=[q.symbol for q in quotes]).values_list(
        "symbol", "id", "tracking_status", "last_error", "quote__price", "quote__quoted_at"
    )
    asset_ids: dict[str, int] = {}
    previous: dict[int, tuple[Decimal, datetime]] = {}
    needs_status: set[int] = set()
    for symbol, asset_id, status, last_error, price, quoted_at in known:
        asset_ids[symbol] = asset_id
        if price is not None:
            previous[asset_id] = (price, quoted_at)
        if status != Asset.TrackingStatus.TRACKED or last_error:
            needs_status.add(asset_id)
    rows: list[Quote] = []
    history: list[PriceHistory] = []
    for data in quotes:
        if data.symbol not in asset_ids:
            logger.warning("quote for %s dropped: no such asset", data.symbol)
            continue
        asset_id = asset_ids[data.symbol]
        old = previous.get(asset_id)
        if old is not None and old[1] > data.quoted_at:
            continue
        row = Quote(
            asset_id=asset_id,
            price=data.price,
            previous_close=data.previous_close,
            change=data.change,
            change_percent=data.change_percent,
            volume=data.volume,
            high=data.high,
            low=data.low,
            market_cap=data.market_cap,
            source=data.source,
            quoted_at=data.quoted_at,
            fetched_at=fetched_at,
        )
        rows.append(row)
        history.append(
            PriceHistory(
                asset_id=asset_id, quoted_at=data.quoted_at, price=data.price, volume=data.volume, source=data.source
            )
        )
        result.stored.append(data.symbol)
        if old is None or old[0] != data.price:
            result.changed.append(data.symbol)
    with transaction.atomic():
        Quote.objects.bulk_create(rows, update_conflicts=True, unique_fields=["asset"], update_fields=QUOTE_FIELDS)
        PriceHistory.objects.bulk_create(history, ignore_conflicts=True)
        recovered = [r.asset_id for r in rows if r.asset_id in needs_status]
        if recovered:
            Asset.objects.filter(id__in=recovered).update(
                tracking_status=Asset.TrackingStatus.TRACKED, unknown_since=None, last_error=""
            )
    symbols_by_id = {v: k for k, v in asset_ids.items()}
    for row in rows:
        row.asset = Asset(id=row.asset_id, symbol=symbols_by_id[row.asset_id])
    result.quotes = rows
    quotes_cache(quotes=rows)
    return result


def quotes_cache(*, quotes: Sequence[Quote]) -> None:
    """Put the latest quotes in the read cache (REALTIME_CACHE_TIMEOUT)."""
    if quotes:
        cache.set_many(
            {quote_cache_key(q.asset.symbol): asset_update_payload(q) for q in quotes},
            timeout=settings.REALTIME_CACHE_TIMEOUT,
        )


def assets_mark_unknown(*, symbols: Sequence[str], reason: str) -> list[str]:
    """Mark symbols every source called unknown; returns those newly marked (to report once).
    Ones already unknown get their unknown_since refreshed, so re-probes stay spaced out."""
    if not symbols:
        return []
    now = timezone.now()
    with transaction.atomic():
        newly = list(
            Asset.objects.filter(symbol__in=symbols)
            .exclude(tracking_status=Asset.TrackingStatus.UNKNOWN)
            .values_list("symbol", flat=True)
        )
        Asset.objects.filter(symbol__in=symbols).update(
            tracking_status=Asset.TrackingStatus.UNKNOWN, unknown_since=now, last_error=reason[:1000]
        )
    if newly:
        logger.warning("unknown to every source: %s", ", ".join(sorted(newly)))
    return sorted(newly)


def assets_mark_failing(*, errors: Mapping[str, str]) -> None:
    """Record why symbols could not be priced (after the batch's last retry)."""
    for symbol, message in errors.items():
        Asset.objects.filter(symbol=symbol).exclude(tracking_status=Asset.TrackingStatus.UNKNOWN).update(
            tracking_status=Asset.TrackingStatus.FAILING, last_error=message[:1000]
        )


def refresh_run_record(
    *,
    run_id: int,
    attempt_key: str,
    succeeded: int,
    failed: Mapping[str, str],
    source_counts: Mapping[str, int],
    batch_done: bool,
) -> bool:
    """Add one batch attempt's figures to its run. Counters move with F() increments so
    concurrent batches never lose an update; the row lock also serialises the JSON merges and
    the applied-attempt check that keeps a redelivered attempt from counting twice. Returns
    True when this attempt finished the run."""
    with transaction.atomic():
        run = RefreshRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or attempt_key in run.applied_attempts:
            return False
        counts = dict(run.source_counts)
        for source, n in source_counts.items():
            counts[source] = counts.get(source, 0) + n
        errors = {**run.errors, **failed}
        finishes = batch_done and run.finished_at is None and run.batches_finished + 1 >= run.batches_total
        RefreshRun.objects.filter(pk=run_id).update(
            symbols_succeeded=F("symbols_succeeded") + succeeded,
            symbols_failed=F("symbols_failed") + len(failed),
            batches_finished=F("batches_finished") + (1 if batch_done else 0),
            source_counts=counts,
            errors=errors,
            applied_attempts=[*run.applied_attempts, attempt_key],
            **({"finished_at": timezone.now()} if finishes else {}),
        )
        return finishes
