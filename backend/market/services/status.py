"""The price feed's state for the health and status APIs."""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from django.conf import settings
from django.utils import timezone

from backend.core.clock import iso_z
from backend.market.models import Asset, RefreshRun

from .manager import SourceHealth, data_sources_health


class PriceFeedStatus(TypedDict):
    running: bool
    last_update: str | None
    last_run_id: int | None
    last_run_failed: int
    update_interval: int
    unknown_symbols: int
    sources: list[SourceHealth]


def price_feed_status() -> PriceFeedStatus:
    """`running` means a scheduled cycle finished within three update intervals."""
    last = RefreshRun.objects.filter(finished_at__isnull=False).order_by("-finished_at").first()
    last_scheduled = (
        RefreshRun.objects.filter(kind=RefreshRun.Kind.SCHEDULED, finished_at__isnull=False)
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    horizon = timezone.now() - timedelta(seconds=3 * settings.REALTIME_UPDATE_INTERVAL)
    return {
        "running": last_scheduled is not None and last_scheduled >= horizon,
        "last_update": iso_z(last.finished_at) if last else None,
        "last_run_id": last.pk if last else None,
        "last_run_failed": last.symbols_failed if last else 0,
        "update_interval": settings.REALTIME_UPDATE_INTERVAL,
        "unknown_symbols": Asset.objects.filter(tracking_status=Asset.TrackingStatus.UNKNOWN).count(),
        "sources": data_sources_health(),
    }
