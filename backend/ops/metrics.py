"""Prometheus families for `/metrics`, built at scrape time from the counters and samples in
Redis (backend/core/metrics.py), the database and the connection registry."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from backend.core.metrics import COUNTER_HELP, counters, stage_latencies
from backend.market.models import RefreshRun
from backend.ops.health import websocket_stats

logger = logging.getLogger(__name__)


class TickerflowCollector(Collector):
    """Builds the Prometheus families at scrape time from Redis and the database."""

    def collect(self) -> Iterator[Any]:
        grouped: dict[str, list[tuple[dict[str, str], float]]] = {}
        for name, labels, value in counters():
            grouped.setdefault(name, []).append((labels, value))
        for name, help_text in COUNTER_HELP.items():
            rows = grouped.get(name, [])
            label_names = sorted({k for labels, _ in rows for k in labels})
            family = CounterMetricFamily(f"tickerflow_{name}", help_text, labels=label_names)
            for labels, value in rows:
                family.add_metric([labels.get(k, "") for k in label_names], value)
            yield family

        last = RefreshRun.objects.exclude(finished_at=None).order_by("-started_at").first()
        duration = GaugeMetricFamily("tickerflow_cycle_duration_seconds", "Duration of the last finished refresh cycle")
        if last is not None and last.duration_seconds is not None:
            duration.add_metric([], last.duration_seconds)
        yield duration

        stages = GaugeMetricFamily(
            "tickerflow_stage_latency_ms", "Pipeline stage latency over recent samples", labels=["stage", "quantile"]
        )
        for stage, figures in stage_latencies().items():
            for quantile, key in (("0.5", "p50_ms"), ("0.95", "p95_ms")):
                if figures[key] is not None:
                    stages.add_metric([stage, quantile], float(figures[key] or 0))
        yield stages

        connections = GaugeMetricFamily(
            "tickerflow_websocket_connections", "Open WebSocket connections (all Daphne processes)"
        )
        try:
            connections.add_metric([], websocket_stats()["total_connections"])
        except Exception:
            logger.warning("metrics: connection registry unavailable")
        yield connections
