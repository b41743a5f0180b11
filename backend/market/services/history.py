"""Loading daily history bars (update_asset_prices --historical, a new holding's backfill,
seed_demo).

From the first configured source that has history: Yahoo's v8 chart endpoint or the
simulated path. Alpha Vantage's and Finnhub's free tiers have no daily bars worth the budget.
Bars are inserted idempotently (unique asset + quoted_at), bad closes are skipped, and the
bars a symbol already has are neither fetched again (simulated) nor written twice. Once the
new bars commit, `history_loaded` asks for the daily portfolio values from their earliest day
to be re-derived (docs/history-and-demo.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import requests
from django.db import transaction
from django.db.models import Count, Q

from backend.market.currency import pair_symbol
from backend.market.models import Asset, PriceHistory
from backend.market.selectors import pairs_needed
from backend.market.signals import history_loaded

from .manager import ManagedSource, data_source_manager
from .sources.base import InvalidQuote, http_timeout, parse_optional_int, parse_price
from .sources.simulated import CLOSE_HOUR, SimulatedSource, simulated_day_volume, simulated_value
from .sources.yahoo import YahooSource

logger = logging.getLogger(__name__)

Bar = tuple[datetime, Decimal, int | None]
INSERT_BATCH = 5000
# History counts as there when it reaches back to within this much of the window's start.
COVERED_SLACK = timedelta(days=7)


@dataclass(frozen=True)
class HistoryLoad:
    inserted: int = 0
    symbols: list[str] = field(default_factory=list)  # those that gained bars
    since: date | None = None  # the earliest new bar's day
    failed: list[str] = field(default_factory=list)  # the source did not answer: worth a retry
    source: str | None = None


def _session_seconds(result: dict[str, Any]) -> int:
    """How long the regular session lasts, from `meta.currentTradingPeriod.regular`: a daily
    bar's timestamp is its session's open, and its close comes this much later."""
    try:
        regular = result["meta"]["currentTradingPeriod"]["regular"]
        length = int(regular["end"]) - int(regular["start"])
    except (KeyError, TypeError, ValueError):
        return 0
    return length if 0 < length <= 86400 else 0


def parse_yahoo_chart(body: Any, *, now: datetime | None = None) -> list[Bar]:
    """`chart.result[0]`: parallel arrays of timestamps, closes and volumes. A null or bad
    close (a halted day, a gap) is skipped. Each bar is stamped at its session's close when
    the answer says how long a session is; with `now`, a session not yet closed is left out
    (its "close" is only the latest price, which the quote pipeline stores)."""
    try:
        result = body["chart"]["result"][0]
        stamps = result["timestamp"]
        quote = result["indicators"]["quote"][0]
        closes, volumes = quote["close"], quote.get("volume") or [None] * len(stamps)
    except (KeyError, IndexError, TypeError):
        return []
    session = timedelta(seconds=_session_seconds(result))
    bars: list[Bar] = []
    for stamp, close, volume in zip(stamps, closes, volumes, strict=False):
        try:
            at = datetime.fromtimestamp(int(stamp), tz=UTC) + session
            bar = (at, parse_price(close), parse_optional_int(volume))
        except (InvalidQuote, TypeError, ValueError, OverflowError, OSError):
            continue
        if now is None or at <= now:
            bars.append(bar)
    return bars


def _yahoo_bars(managed: ManagedSource, symbol: str, days: int, now: datetime) -> list[Bar] | None:
    """The symbol's bars, [] when Yahoo has none, None when it did not answer."""
    source = managed.source
    assert isinstance(source, YahooSource)
    if not managed.limit.acquire():
        return None
    try:
        response = source.session.get(
            f"{source.base_url}/v8/finance/chart/{symbol}",
            params={
                "period1": str(int((now - timedelta(days=days)).timestamp())),
                "period2": str(int(now.timestamp())),
                "interval": "1d",
            },
            timeout=http_timeout(),
        )
    except requests.RequestException as error:
        logger.warning("history: yahoo chart of %s failed: %s", symbol, error)
        return None
    if response.status_code == 404:
        return []  # Yahoo's answer for a symbol it has no chart of
    if response.status_code != 200:
        logger.warning("history: yahoo chart of %s answered %s", symbol, response.status_code)
        return None
    try:
        return parse_yahoo_chart(response.json(), now=now)
    except ValueError:
        logger.warning("history: yahoo chart of %s is not JSON", symbol)
        return None


def simulated_close_times(*, days: int, now: datetime) -> list[datetime]:
    """The simulated source's daily closes (CLOSE_HOUR UTC) of the last `days` days, newest
    first, the latest at or before `now`."""
    close = now.astimezone(UTC).replace(hour=CLOSE_HOUR, minute=0, second=0, microsecond=0)
    if close > now:
        close -= timedelta(days=1)
    return [close - timedelta(days=back) for back in range(days)]


def _simulated_bar(symbol: str, at: datetime) -> Bar:
    stamp = int(at.timestamp())
    day_start = stamp - stamp % 86400
    return at, simulated_value(symbol, stamp), int(simulated_day_volume(symbol, day_start))


def _existing(asset_ids: Sequence[int], times: Sequence[datetime]) -> dict[int, set[datetime]]:
    """The times among these that each asset already has a bar at. One grouped count first,
    so a second run over complete history reads no rows: only a partial asset's are read."""
    stored = PriceHistory.objects.filter(asset_id__in=asset_ids, quoted_at__in=times)
    counts = dict(stored.values("asset_id").annotate(n=Count("pk")).values_list("asset_id", "n"))
    wanted = len(set(times))
    complete = {asset_id for asset_id, n in counts.items() if n >= wanted}
    have: dict[int, set[datetime]] = {asset_id: set(times) for asset_id in complete}
    partial_ids = [asset_id for asset_id in counts if asset_id not in complete]
    for asset_id, at in stored.filter(asset_id__in=partial_ids).values_list("asset_id", "quoted_at"):
        have.setdefault(asset_id, set()).add(at)
    return have


def history_source() -> ManagedSource | None:
    """The first configured source with daily bars (yahoo or simulated), or None."""
    return next((m for m in data_source_manager().managed if isinstance(m.source, YahooSource | SimulatedSource)), None)


def history_symbols() -> list[str]:
    """What `--historical` covers by default: every active symbol held in a position or on a
    watchlist, and the FX pairs the held ones convert through."""
    wanted = Q(positions__quantity__gt=0) | Q(watchlist_items__isnull=False) | Q(symbol__in=sorted(pairs_needed()))
    return sorted(set(Asset.objects.filter(wanted, is_active=True).values_list("symbol", flat=True)))


def history_backfill_candidates(*, symbols: Sequence[str], days: int, now: datetime) -> list[str]:
    """Of these symbols and the FX pairs their holders convert them through, those whose
    stored history does not reach back `days` (a week's slack): what a new holding needs."""
    held = Asset.objects.filter(symbol__in=symbols, positions__quantity__gt=0)
    pairs = {
        pair
        for currency, base in held.values_list("currency", "positions__portfolio__base_currency").distinct()
        if (pair := pair_symbol(currency, base)) is not None
    }
    reaches = now - timedelta(days=days) + COVERED_SLACK
    covered = Asset.objects.filter(history__quoted_at__lte=reaches).values("pk")
    wanted = Asset.objects.filter(symbol__in=sorted({*symbols, *pairs})).exclude(pk__in=covered)
    return sorted(wanted.values_list("symbol", flat=True))


def history_load(*, symbols: Sequence[str], days: int, now: datetime) -> HistoryLoad:
    """Insert up to `days` daily bars per symbol (symbols with no asset are skipped)."""
    assets = dict(Asset.objects.filter(symbol__in=symbols).values_list("symbol", "id"))
    managed = history_source()
    if managed is None:
        logger.warning("no configured source has history bars (yahoo or simulated)")
        return HistoryLoad()
    name = managed.source.name
    failed: list[str] = []
    wanted: dict[str, list[Bar]] = {}
    if isinstance(managed.source, SimulatedSource):
        times = simulated_close_times(days=days, now=now)
        have = _existing(list(assets.values()), times)
        for symbol, asset_id in assets.items():
            stored = have.get(asset_id, set())
            wanted[symbol] = [_simulated_bar(symbol, at) for at in times if at not in stored]
    else:
        for symbol in assets:
            bars = _yahoo_bars(managed, symbol, days, now)
            if bars is None:
                failed.append(symbol)
            else:
                wanted[symbol] = bars
        have = _existing(list(assets.values()), sorted({bar[0] for bars in wanted.values() for bar in bars}))
    rows = [
        PriceHistory(asset_id=assets[symbol], quoted_at=at, price=price, volume=volume, source=name)
        for symbol, bars in wanted.items()
        for at, price, volume in bars
        if at not in have.get(assets[symbol], ())
    ]
    if not rows:
        return HistoryLoad(failed=sorted(failed), source=name)
    by_id = {asset_id: symbol for symbol, asset_id in assets.items()}
    loaded = sorted({by_id[row.asset_id] for row in rows})
    since = min(row.quoted_at for row in rows).date()
    with transaction.atomic():
        # A concurrent load of the same bars: theirs stand, ours are skipped.
        PriceHistory.objects.bulk_create(rows, ignore_conflicts=True, batch_size=INSERT_BATCH)
        transaction.on_commit(partial(history_loaded.send, sender=PriceHistory, symbols=loaded, since=since))
    return HistoryLoad(inserted=len(rows), symbols=loaded, since=since, failed=sorted(failed), source=name)
