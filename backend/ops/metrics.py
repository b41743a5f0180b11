"""Prometheus families for `/metrics`, built at scrape time from the counters and samples in
Redis (backend/core/metrics.py), the database and the connection registry."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from backend.alerts.selectors import alert_counts
from backend.core.metrics import COUNTER_HELP, counters, stage_latencies
from backend.market.models import RefreshRun
from backend.market.services.stream.state import stream_status
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

        yield from _stream_gauges()

        yield from _alert_families()

        connections = GaugeMetricFamily(
            "tickerflow_websocket_connections", "Open WebSocket connections (all Daphne processes)"
        )
        try:
            connections.add_metric([], websocket_stats()["total_connections"])
        except Exception:
            logger.warning("metrics: connection registry unavailable")
        yield connections


def _stream_gauges() -> Iterator[Any]:
    """The stream process's state (absent while streaming is off or the process is down)."""
    connected = GaugeMetricFamily("tickerflow_stream_connected", "1 while the stream process holds its source's socket")
    followed = GaugeMetricFamily("tickerflow_stream_symbols_followed", "Symbols followed on the streaming source")
    rate = GaugeMetricFamily("tickerflow_stream_messages_per_second", "Frames a second from the streaming source")
    state = stream_status()
    if state.get("running"):
        connected.add_metric([], 1 if state["connected"] else 0)
        followed.add_metric([], state["symbols_followed"])
        rate.add_metric([], state["messages_per_second"])
    elif state.get("enabled"):
        connected.add_metric([], 0)
    yield from (connected, followed, rate)


def _alert_families() -> Iterator[Any]:
    """Alerts by state and stored firings (the database; the fired counter is in Redis), and
    the check's time per stored batch (its stage samples)."""
    counts = alert_counts()
    alerts = GaugeMetricFamily("tickerflow_alerts", "Price alerts by state", labels=["state"])
    for state in ("active", "disarmed", "inactive"):
        alerts.add_metric([state], counts[state])
    yield alerts
    firings = GaugeMetricFamily("tickerflow_alert_firings", "Stored alert firings", labels=["scope"])
    for scope in ("total", "last_24h", "unread"):
        firings.add_metric([scope], counts[f"firings_{scope}"])
    yield firings
    check = GaugeMetricFamily(
        "tickerflow_alert_check_ms", "Time to check a stored batch against the alerts", labels=["quantile"]
    )
    figures = stage_latencies(["alerts"])["alerts"]
    for quantile, key in (("0.5", "p50_ms"), ("0.95", "p95_ms")):
        if figures[key] is not None:
            check.add_metric([quantile], float(figures[key] or 0))
    yield check
