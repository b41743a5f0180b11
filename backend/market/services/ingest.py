"""Storing what the sources answered: latest quotes, history, tracking status, the run record.

Everything here is idempotent: running the same batch twice (a redelivered task) leaves the
same rows, because the latest quote is an upsert and history is unique on (asset, quoted_at).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import NamedTuple, cast

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Field
from django.utils import timezone

from backend.market.models import Asset, PriceHistory, Quote, RefreshRun
from backend.market.selectors import asset_update_fields, quote_cache_key
from backend.market.signals import asset_currencies_changed
from backend.realtime.payloads import AssetUpdate

from .ingest_currency import currencies_named, currencies_write
from .sources.base import QuoteData

logger = logging.getLogger(__name__)


class QuoteRow(NamedTuple):
    """One latest-quote row as written (the Quote model's fields, without building a model)."""

    asset_id: int
    price: Decimal
    previous_close: Decimal | None
    change: Decimal | None
    change_percent: Decimal | None
    volume: int | None
    high: Decimal | None
    low: Decimal | None
    market_cap: int | None
    source: str
    quoted_at: datetime
    fetched_at: datetime


@dataclass
class StoreResult:
    stored: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    # The `asset_update` of every stored quote, by symbol: built once, for the cache and events.
    payloads: dict[str, AssetUpdate] = field(default_factory=dict)
    # Quotes not written, never silently: no asset for the symbol (the caller reports it
    # failed), or older than the quote already stored (the symbol's latest quote stands).
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    currencies: list[str] = field(default_factory=list)  # currency set from the source; in `changed` too


# The stored precision of prices and percentages (DecimalField decimal_places=6). Rounded here,
# half-even like Django's own save, so what is published equals what is stored.
SIX_PLACES = Decimal("1e-6")


def _six(value: Decimal) -> Decimal:
    return value.quantize(SIX_PLACES, rounding=ROUND_HALF_EVEN)


def _six_or_none(value: Decimal | None) -> Decimal | None:
    return None if value is None else _six(value)


def quotes_store(
    *, quotes: Sequence[QuoteData], fetched_at: datetime | None = None, refresh_older: bool = True
) -> StoreResult:
    """Upsert the latest quote and add a history row per symbol; returns which symbols'
    prices changed. A quote older than the one stored is not written (a late or replayed
    batch: `stale`); one for a symbol with no asset is not written either (`missing`).
    `refresh_older`: an older quote from another source than the stored one (a poll behind
    a streamed trade) still refreshes the fields a trade lacks; the stored price stands."""
    result = StoreResult()
    if not quotes:
        return result
    fetched_at = fetched_at or datetime.now(UTC)
    # One query for the assets, their tracking state, currency and current quote (LEFT JOIN).
    asset_fields = ("symbol", "id", "tracking_status", "last_error", "currency", "currency_locked")
    known = Asset.objects.filter(symbol__in=[q.symbol for q in quotes]).values_list(
        *asset_fields, *(f"quote__{name}" for name in QuoteRow._fields[1:])
    )
    asset_ids: dict[str, int] = {}
    unlocked: dict[str, str] = {}  # symbol -> currency, where the source may replace it
    previous: dict[int, QuoteRow] = {}
    needs_status: set[int] = set()
    for symbol, asset_id, status, last_error, currency, locked, *stored in known:
        asset_ids[symbol] = asset_id
        if not locked:
            unlocked[symbol] = currency
        if stored[0] is not None:
            previous[asset_id] = QuoteRow(asset_id, *stored)
        if status != Asset.TrackingStatus.TRACKED or last_error:
            needs_status.add(asset_id)
    rows: list[QuoteRow] = []
    for data in quotes:
        if data.symbol not in asset_ids:
            result.missing.append(data.symbol)
            continue
        asset_id = asset_ids[data.symbol]
        old = previous.get(asset_id)
        if old is not None and old.quoted_at > data.quoted_at:
            result.stale.append(data.symbol)
            if refresh_older and old.source != data.source:
                rows.append(_older_fields_row(old, data, fetched_at))
                result.payloads[data.symbol] = asset_update_fields(symbol=data.symbol, quote=rows[-1])
            continue
        row = QuoteRow(
            asset_id,
            _six(data.price),
            _six_or_none(data.previous_close),
            _six_or_none(data.change),
            _six_or_none(data.change_percent),
            data.volume,
            _six_or_none(data.high),
            _six_or_none(data.low),
            data.market_cap,
            data.source,
            data.quoted_at,
            fetched_at,
        )
        rows.append(row)
        result.stored.append(data.symbol)
        result.payloads[data.symbol] = asset_update_fields(symbol=data.symbol, quote=row)
        if old is None or old.price != row.price:
            result.changed.append(data.symbol)
    if result.missing:
        logger.warning("%d quotes not stored, no such asset: %s", len(result.missing), ", ".join(result.missing))
    if result.stale:
        logger.info("%d quotes not stored, older than the stored one: %s", len(result.stale), ", ".join(result.stale))
    with transaction.atomic():
        result.currencies = currencies_write(named=currencies_named(quotes, unlocked), asset_ids=asset_ids)
        written = _quotes_write(rows)
        if written is not None:
            _unwritten_drop(result, {asset_ids[s]: s for s in result.payloads}, written)
        recovered = [r.asset_id for r in rows if r.asset_id in needs_status]
        if recovered:
            Asset.objects.filter(id__in=recovered).update(
                tracking_status=Asset.TrackingStatus.TRACKED, unknown_since=None, last_error=""
            )
    result.changed += [s for s in result.currencies if s not in result.changed]
    if result.currencies:
        asset_currencies_changed.send(sender=Asset, symbols=result.currencies)
    quotes_cache(payloads=result.payloads)
    return result


def _older_fields_row(old: QuoteRow, data: QuoteData, fetched_at: datetime) -> QuoteRow:
    """The stored quote (price, time, source) with the fields a trade lacks taken from an
    older quote of another source: previous close and the change from it, day high, low,
    volume, market cap (each kept where the older quote has none)."""
    previous_close = _six_or_none(data.previous_close) or old.previous_close
    change = old.price - previous_close if previous_close else old.change
    percent = change * 100 / previous_close if previous_close and change is not None else old.change_percent
    return old._replace(
        previous_close=previous_close,
        change=_six_or_none(change),
        change_percent=_six_or_none(percent),
        volume=data.volume if data.volume is not None else old.volume,
        high=_six_or_none(data.high) or old.high,
        low=_six_or_none(data.low) or old.low,
        market_cap=data.market_cap if data.market_cap is not None else old.market_cap,
        fetched_at=fetched_at,
    )


def _unwritten_drop(result: StoreResult, symbols: Mapping[int, str], written: set[int]) -> None:
    """A newer quote committed between our read and our write (a streamed trade racing a
    poll): the database kept it, so ours is stale and must not be cached or published."""
    lost = {symbol for asset_id, symbol in symbols.items() if asset_id not in written}
    result.stale += [s for s in result.stored if s in lost]
    result.stored = [s for s in result.stored if s not in lost]
    result.changed = [s for s in result.changed if s not in lost]
    result.payloads = {s: p for s, p in result.payloads.items() if s not in lost}


def _quotes_write(rows: Sequence[QuoteRow]) -> set[int] | None:
    """The latest quotes and their history rows, in one statement on PostgreSQL; returns
    the assets whose latest quote was written there (None: every row, elsewhere)."""
    if not rows:
        return None
    if connection.vendor != "postgresql":
        Quote.objects.bulk_create(
            [Quote(**row._asdict()) for row in rows],
            update_conflicts=True,
            unique_fields=["asset"],
            update_fields=list(QuoteRow._fields[1:]),
        )
        history = [
            PriceHistory(asset_id=r.asset_id, quoted_at=r.quoted_at, price=r.price, volume=r.volume, source=r.source)
            for r in rows
        ]
        PriceHistory.objects.bulk_create(history, ignore_conflicts=True)
        return None
    # Django's bulk_create prepares every value through its field in Python (two thirds of a
    # batch's store time); psycopg2 adapts whole lists in C and the server unnests them.
    with connection.cursor() as cursor:
        cursor.execute(_upsert_sql(), [list(column) for column in zip(*rows, strict=True)])
        return {asset_id for (asset_id,) in cursor.fetchall()}


@lru_cache(maxsize=1)
def _upsert_sql() -> str:
    q = connection.ops.quote_name
    quote_meta, history_meta = Quote._meta, PriceHistory._meta
    fields = [cast(Field, quote_meta.get_field(name)) for name in QuoteRow._fields]
    columns = [q(str(f.column)) for f in fields]
    typed = ", ".join(f"%s::{f.db_type(connection)}[]" for f in fields)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])
    history_fields = ("asset_id", "quoted_at", "price", "volume", "source")
    history = ", ".join(q(str(cast(Field, history_meta.get_field(n)).column)) for n in history_fields)
    asset, quoted_at = columns[0], q(str(cast(Field, quote_meta.get_field("quoted_at")).column))
    return (
        f"WITH v ({', '.join(columns)}) AS (SELECT * FROM unnest({typed})), "  # noqa: S608 (identifiers from model meta)
        f"latest AS (INSERT INTO {q(quote_meta.db_table)} AS t ({', '.join(columns)}) SELECT * FROM v "
        f"ON CONFLICT ({asset}) DO UPDATE SET {updates} WHERE t.{quoted_at} <= EXCLUDED.{quoted_at} "
        f"RETURNING t.{asset}), "
        f"history AS (INSERT INTO {q(history_meta.db_table)} ({history}) SELECT {history} FROM v "
        "ON CONFLICT DO NOTHING) "
        "SELECT * FROM latest"
    )


def quotes_cache(*, payloads: Mapping[str, AssetUpdate]) -> None:
    """Put the latest quotes in the read cache (REALTIME_CACHE_TIMEOUT)."""
    if payloads:
        cache.set_many(
            {quote_cache_key(symbol): payload for symbol, payload in payloads.items()},
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


# A batch's run record in one statement on PostgreSQL: every batch of a cycle updates this
# one row, and a lock held across a SELECT, Python and an UPDATE made the workers queue for it.
_RUN_RECORD_SQL = """
WITH old AS (
    SELECT id, finished_at FROM market_refreshrun
    WHERE id = %(run_id)s AND NOT (applied_attempts ? %(key)s)
    FOR UPDATE
)
UPDATE market_refreshrun AS r SET
    symbols_succeeded = r.symbols_succeeded + %(succeeded)s,
    symbols_failed = r.symbols_failed + %(failed)s,
    batches_finished = r.batches_finished + %(done)s,
    source_counts = (
        SELECT coalesce(jsonb_object_agg(key, total), '{}'::jsonb)
        FROM (
            SELECT key, sum(value::bigint) AS total
            FROM (
                SELECT key, value FROM jsonb_each_text(r.source_counts)
                UNION ALL SELECT key, value FROM jsonb_each_text(%(counts)s::jsonb)
            ) AS both_counts
            GROUP BY key
        ) AS summed
    ),
    errors = r.errors || %(errors)s::jsonb,
    applied_attempts = r.applied_attempts || jsonb_build_array(%(key)s::text),
    finished_at = CASE
        WHEN %(done)s = 1 AND r.finished_at IS NULL AND r.batches_finished + 1 >= r.batches_total THEN now()
        ELSE r.finished_at
    END
FROM old
WHERE r.id = old.id
RETURNING old.finished_at IS NULL AND r.finished_at IS NOT NULL
"""


def refresh_run_record(
    *,
    run_id: int,
    attempt_key: str,
    succeeded: int,
    failed: Mapping[str, str],
    source_counts: Mapping[str, int],
    batch_done: bool,
) -> bool:
    """Add one batch attempt's figures to its run. Counters and JSON merges happen under the
    row's lock, so concurrent batches never lose an update, and an attempt already applied
    (a redelivered batch) is not counted twice. Returns True when this attempt finished the run."""
    if connection.vendor == "postgresql":
        params: dict[str, int | str] = {
            "run_id": run_id,
            "key": attempt_key,
            "succeeded": succeeded,
            "failed": len(failed),
            "done": 1 if batch_done else 0,
            "counts": json.dumps(dict(source_counts)),
            "errors": json.dumps(dict(failed)),
        }
        with connection.cursor() as cursor:
            cursor.execute(_RUN_RECORD_SQL, params)
            row = cursor.fetchone()
        return bool(row and row[0])
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
