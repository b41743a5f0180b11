"""Reads the dashboard and its JSON endpoints are built from."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any, TypedDict

from django.conf import settings
from django.db.models import Count, Max
from django.utils import timezone

from backend.core.clock import iso_z
from backend.market.models import Asset, PriceHistory, Quote, RefreshRun
from backend.market.selectors import asset_update_payload
from backend.portfolios.models import Portfolio, PortfolioSnapshot
from backend.portfolios.selectors import portfolio_snapshot, portfolios_read
from backend.realtime.payloads import AssetUpdate, PortfolioUpdate

# A day of 30-second quotes is 2,880 points; more than this in one answer helps nobody.
HISTORY_MAX_POINTS = 10_000
SPARKLINE_POINTS = 60
CHART_MAX_POINTS = 240


class HistoryPoint(TypedDict):
    quoted_at: str
    price: Decimal
    volume: int | None
    source: str


def price_history(*, symbol: str, days: int) -> list[HistoryPoint] | None:
    """The stored quotes of the last `days` days, oldest first; None for an unknown symbol."""
    asset = Asset.objects.filter(symbol=symbol).first()
    if asset is None:
        return None
    since = timezone.now() - timedelta(days=days)
    rows = list(
        PriceHistory.objects.filter(asset=asset, quoted_at__gte=since)
        .order_by("-quoted_at")
        .values_list("quoted_at", "price", "volume", "source")[:HISTORY_MAX_POINTS]
    )
    rows.reverse()
    return [{"quoted_at": iso_z(t), "price": p, "volume": v, "source": s} for t, p, v, s in rows]


def sparkline_series(*, symbols: list[str], points: int = SPARKLINE_POINTS) -> dict[str, list[float]]:
    """The last `points` prices of each symbol, oldest first (one indexed query per symbol)."""
    series: dict[str, list[float]] = {}
    for symbol in dict.fromkeys(symbols):
        prices = list(
            PriceHistory.objects.filter(asset__symbol=symbol)
            .order_by("-quoted_at")
            .values_list("price", flat=True)[:points]
        )
        prices.reverse()
        series[symbol] = [float(p) for p in prices]
    return series


class ValuePoint(TypedDict):
    t: str
    v: float


def portfolio_value_series(
    *, portfolio_id: int, user_id: int, days: int = 7, max_points: int = CHART_MAX_POINTS
) -> list[ValuePoint] | None:
    """Snapshot values over the last `days` days, oldest first, thinned evenly to at most
    `max_points` (the newest always kept); None when the portfolio is not the user's."""
    if not Portfolio.objects.filter(pk=portfolio_id, owner_id=user_id).exists():
        return None
    since = timezone.now() - timedelta(days=days)
    rows = list(
        PortfolioSnapshot.objects.filter(portfolio_id=portfolio_id, valued_at__gte=since)
        .order_by("valued_at")
        .values_list("valued_at", "total_value")
    )
    if len(rows) > max_points:
        step = len(rows) / max_points
        thinned = [rows[int(i * step)] for i in range(max_points - 1)]
        rows = [*thinned, rows[-1]]
    return [{"t": iso_z(t), "v": float(v)} for t, v in rows]


class PortfolioCard(TypedDict):
    id: int
    name: str
    base_currency: str
    valued: bool
    summary: PortfolioUpdate
    # As REST gives them (backend.portfolios.selectors.portfolios_read: currency, fx_rate,
    # cost_basis, money in the base currency), plus the asset's name for the row's tooltip.
    positions: list[dict[str, Any]]


def dashboard_portfolios(*, user_id: int) -> list[PortfolioCard]:
    """The user's portfolios as the dashboard first draws them: the same figures a
    `portfolio_update` snapshot carries, and the positions as the REST API reads them (one
    valuation of the rows for every card, the one a foreign holding is right in)."""
    read = {p["id"]: p for p in portfolios_read(owner_id=user_id)}
    names = dict(Asset.objects.filter(positions__portfolio__owner_id=user_id).distinct().values_list("symbol", "name"))
    cards: list[PortfolioCard] = []
    for portfolio in Portfolio.objects.filter(owner_id=user_id):
        summary = portfolio_snapshot(portfolio_id=portfolio.pk, user_id=user_id)
        if summary is None or portfolio.pk not in read:  # deleted between the reads
            continue
        cards.append(
            {
                "id": portfolio.pk,
                "name": portfolio.name,
                "base_currency": portfolio.base_currency,
                "valued": portfolio.valued_at is not None,
                "summary": summary,
                "positions": [{**row, "name": names.get(row["symbol"], "")} for row in read[portfolio.pk]["positions"]],
            }
        )
    return cards


class WatchlistRow(TypedDict):
    symbol: str
    name: str
    tracking_status: str
    quote: AssetUpdate | None


def watchlist_rows(*, user_id: int) -> list[WatchlistRow]:
    from .models import WatchlistItem

    items = WatchlistItem.objects.filter(user_id=user_id).select_related("asset", "asset__quote")
    return [watchlist_row(asset=item.asset) for item in items]


def watchlist_row(*, asset: Asset) -> WatchlistRow:
    # A missing reverse one-to-one raises an AttributeError subclass: getattr's default covers it.
    quote: Quote | None = getattr(asset, "quote", None)
    return {
        "symbol": asset.symbol,
        "name": asset.name,
        "tracking_status": asset.tracking_status,
        "quote": asset_update_payload(quote) if quote else None,
    }


def status_overview(*, runs: int = 10) -> dict[str, Any]:
    """What an operator checks first: recent cycles, symbols in trouble, each source's last
    quote. Optional parts (connections, circuit state) are added by the view."""
    recent = [
        {
            "id": run.pk,
            "kind": run.kind,
            "started_at": iso_z(run.started_at),
            "finished_at": iso_z(run.finished_at),
            "duration_seconds": run.duration_seconds,
            "batches": f"{run.batches_finished}/{run.batches_total}",
            "symbols_requested": run.symbols_requested,
            "symbols_succeeded": run.symbols_succeeded,
            "symbols_failed": run.symbols_failed,
            "source_counts": run.source_counts,
            "errors": run.errors,
        }
        for run in RefreshRun.objects.all()[:runs]
    ]
    troubled = Asset.objects.filter(
        tracking_status__in=[Asset.TrackingStatus.UNKNOWN, Asset.TrackingStatus.FAILING]
    ).order_by("tracking_status", "symbol")
    problems = [
        {
            "symbol": a.symbol,
            "status": a.tracking_status,
            "last_error": a.last_error,
            "unknown_since": iso_z(a.unknown_since),
            "updated_at": iso_z(a.updated_at),
        }
        for a in troubled
    ]
    per_source = {
        row["source"]: row
        for row in Quote.objects.values("source").annotate(quotes=Count("pk"), last_fetched=Max("fetched_at"))
    }
    sources = []
    for priority, name in enumerate(settings.MARKET_DATA_SOURCES, start=1):
        seen = per_source.pop(name, None)
        sources.append(
            {
                "name": name,
                "priority": priority,
                "latest_quotes": seen["quotes"] if seen else 0,
                "last_fetched": iso_z(seen["last_fetched"]) if seen else None,
            }
        )
    for name, seen in sorted(per_source.items()):  # quotes from a source no longer configured
        sources.append(
            {
                "name": name,
                "priority": None,
                "latest_quotes": seen["quotes"],
                "last_fetched": iso_z(seen["last_fetched"]),
            }
        )
    last_quote = Quote.objects.aggregate(last=Max("fetched_at"))["last"]
    return {
        "generated_at": iso_z(timezone.now()),
        "last_quote_at": iso_z(last_quote),
        "runs": recent,
        "problem_symbols": problems,
        "sources": sources,
        "tracked_assets": Asset.objects.filter(is_active=True).count(),
    }
