from __future__ import annotations

import asyncio

import pytest

from backend.dashboard import status_parts
from backend.realtime.registry import ConnectionInfo
from consumers.registry import NodeRegistry

pytestmark = pytest.mark.django_db


def test_connection_stats_count_a_live_nodes_connections_and_their_symbols(redis_client):
    redis_client.flushdb()

    async def register() -> None:
        registry = NodeRegistry("status-node")
        info: ConnectionInfo = {
            "connection_id": "c1", "node": "status-node", "user_id": 7, "username": "ann", "auth": "token",
            "connected_at": 0.0, "assets": ["AAPL", "^GSPC"], "portfolios": [3],
        }  # fmt: skip
        await registry.heartbeat([])
        await registry.admit(info, limit=5)
        await registry.close()

    asyncio.run(register())
    stats = status_parts.connection_stats()
    assert stats["total_connections"] == 1
    assert stats["live_nodes"] == 1
    assert stats["portfolio_subscriptions"] == 1
    assert stats["subscribed_symbols"] == ["AAPL", "^GSPC"]


def test_a_part_that_fails_is_reported_in_the_page_data_not_raised(monkeypatch):
    def broken() -> list[object]:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(status_parts, "data_sources_health", broken)
    assert status_parts.source_health() == {"error": "ConnectionError: redis is down"}
