"""The staff status report: recent cycles, sources, the stream, stage latencies, connections."""

from __future__ import annotations

from typing import Any

from django.db.models import Count

from backend.alerts.selectors import alert_counts
from backend.core.clock import iso_z
from backend.core.metrics import stage_latencies
from backend.market.models import Asset, RefreshRun
from backend.market.services.status import price_feed_status
from backend.market.services.stream.state import stream_status
from backend.ops.health import websocket_stats


def _cycle(run: RefreshRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "kind": run.kind,
        "started_at": iso_z(run.started_at),
        "finished_at": iso_z(run.finished_at),
        "duration_seconds": run.duration_seconds,
        "batches": {"total": run.batches_total, "finished": run.batches_finished},
        "symbols": {
            "requested": run.symbols_requested,
            "succeeded": run.symbols_succeeded,
            "failed": run.symbols_failed,
        },
        "source_counts": run.source_counts,
        "errors": run.errors,
    }


def realtime_status() -> dict[str, Any]:
    tracking = dict(
        Asset.objects.values_list("tracking_status").annotate(n=Count("id")).values_list("tracking_status", "n")
    )
    return {
        "price_feed": price_feed_status(),
        "stream": stream_status(),
        "cycles": [_cycle(run) for run in RefreshRun.objects.order_by("-started_at")[:10]],
        "assets": {"by_tracking_status": tracking},
        "unknown_symbols": list(
            Asset.objects.filter(tracking_status=Asset.TrackingStatus.UNKNOWN).values_list("symbol", flat=True)[:200]
        ),
        "latency": stage_latencies(),
        "websocket_connections": websocket_stats(),
        "alerts": alerts_status(),
    }


def alerts_status() -> dict[str, Any]:
    """Alerts by state, firings, and the check's latency per stored batch (stage "alerts")."""
    return {**alert_counts(), "check_latency": stage_latencies(["alerts"])["alerts"]}


def connections_report() -> dict[str, Any]:
    from backend.realtime.registry import ConnectionManager

    manager = ConnectionManager()
    return {**websocket_stats(), "nodes": manager.live_nodes(), "connections": manager.connections()}
