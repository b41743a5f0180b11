"""The live parts of the staff status page: connections (the push layer's registry),
data-source health (the pipeline), alerts and the stream process. Each is read on its own
and a failure is reported in the page's data, not raised: an operator page must render
while Redis is down."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from backend.market.services.manager import data_sources_health
from backend.market.services.stream.state import stream_status
from backend.ops.status import alerts_status
from backend.realtime.registry import ConnectionManager

logger = logging.getLogger(__name__)


def _reported(read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return read()
    except Exception as exc:
        logger.warning("status page: %s failed: %s", read.__name__, exc)
        return {"error": f"{type(exc).__name__}: {exc}"}


def _connections() -> dict[str, Any]:
    manager = ConnectionManager()
    connections = manager.connections()
    return {
        **manager.stats(),
        "live_nodes": len(manager.live_nodes()),
        "subscribed_symbols": sorted({s for c in connections for s in c["assets"]}),
    }


def _sources() -> dict[str, Any]:
    return {"items": list(data_sources_health())}


def connection_stats() -> dict[str, Any]:
    return _reported(_connections)


def source_health() -> dict[str, Any]:
    return _reported(_sources)


def alert_stats() -> dict[str, Any]:
    return _reported(alerts_status)


def stream_stats() -> dict[str, Any]:
    """The stream process as health and the status API show it (docs/operations.md,
    "Monitoring"): on or off, running, connected, symbols followed with each one's last trade
    age, messages and trades per second."""
    return _reported(stream_status)
