"""Cross-process metrics kept in Redis: every worker and Daphne process adds to the same
counters and latency samples, and any web process reports them (backend/ops/metrics.py for
Prometheus, the status API). Recording never raises: losing a sample must not fail a task."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterable, Mapping
from functools import cache

import redis

from backend.core.redis import redis_connect

logger = logging.getLogger(__name__)

COUNTERS_KEY = "tf:metrics:counters"
STAGE_KEY = "tf:metrics:stage:{stage}"
STAGES = ("fetch", "commit", "publish", "end_to_end")
SAMPLES_KEPT = 500

COUNTER_HELP = {
    "source_requests": "Calls to each market data source (one per batch and source asked)",
    "source_errors": "Symbols a market data source failed to answer (not counting unknown symbols)",
    "quotes_stored": "Quotes written (latest quote upserts)",
    "messages_published": "Events handed to the channel layer",
    "cycles": "Refresh cycles started",
    "publish_retries": "Publishes that failed once and were retried on fresh connections",
    "publish_deferred": "Events kept for later because Redis did not answer",
    "publish_recovered": "Kept events published once Redis answered again",
    "publish_resyncs": "Times hubs were told to resync their clients (kept events overflowed)",
    "alerts_fired": "Price alert firings stored (each alert and quote once)",
    "alert_check_errors": "Stored batches whose alert check failed (logged; the prices were still published)",
    "alert_emails_sent": "Alert firings emailed (ALERTS_EMAIL)",
    "alert_emails_failed": "Alert firing emails the email backend failed to send (retried by the task)",
    "stream_trades": "Trades received from the streaming source for followed symbols",
    "stream_flushes": "Conflated trade windows the stream process stored (one batch each)",
    "stream_reconnects": "Times the stream process lost its source's socket and connected again",
    "stream_bad_frames": "Frames or trade entries from the streaming source logged and skipped",
}


@cache
def _client() -> redis.Redis:
    # Its own client with short timeouts: a slow Redis must not hold a task up for a sample.
    return redis_connect(socket_timeout=2, connect_timeout=2)


def _field(name: str, labels: Mapping[str, str]) -> str:
    return name + "".join(f"|{k}={v}" for k, v in sorted(labels.items()))


def counter_add(name: str, amount: float = 1, **labels: str) -> None:
    try:
        _client().hincrbyfloat(COUNTERS_KEY, _field(name, labels), amount)
    except redis.RedisError:
        logger.warning("metrics: could not record %s", name)


def stages_observe(samples: Mapping[str, float], counters: Mapping[str, float] | None = None) -> None:
    """Record several stage durations and counters in one Redis round trip (a fetch batch
    records four stages and a counter: one trip instead of five)."""
    try:
        pipe = _client().pipeline(transaction=False)
        for stage, seconds in samples.items():
            key = STAGE_KEY.format(stage=stage)
            pipe.lpush(key, f"{seconds:.6f}")
            pipe.ltrim(key, 0, SAMPLES_KEPT - 1)
        for name, amount in (counters or {}).items():
            pipe.hincrbyfloat(COUNTERS_KEY, _field(name, {}), amount)
        pipe.execute()
    except redis.RedisError:
        logger.warning("metrics: could not record stages %s", ", ".join(samples))


def _quantile(sorted_values: list[float], q: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[int(q * 100) - 1]


def stage_latencies(stages: Iterable[str] = STAGES) -> dict[str, dict[str, float | int | None]]:
    """p50/p95 in milliseconds over the last SAMPLES_KEPT samples of each stage."""
    result: dict[str, dict[str, float | int | None]] = {}
    for stage in stages:
        raw = _client().lrange(STAGE_KEY.format(stage=stage), 0, -1)
        values = sorted(float(v) * 1000 for v in raw)
        if not values:
            result[stage] = {"p50_ms": None, "p95_ms": None, "samples": 0}
            continue
        result[stage] = {
            "p50_ms": round(_quantile(values, 0.50), 2),
            "p95_ms": round(_quantile(values, 0.95), 2),
            "samples": len(values),
        }
    return result


def counters() -> list[tuple[str, dict[str, str], float]]:
    """Every counter as (name, labels, value)."""
    out: list[tuple[str, dict[str, str], float]] = []
    raw: dict[bytes, bytes] = _client().hgetall(COUNTERS_KEY)  # type: ignore[assignment]
    for field, value in raw.items():
        name, *pairs = field.decode().split("|")
        out.append((name, dict(p.split("=", 1) for p in pairs), float(value)))
    return out
