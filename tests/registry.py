"""Live connections in the real connection registry (Redis), as a Daphne process registers
them, for tests of code that reads who is connected (backend/realtime/registry.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from backend.realtime.registry import ConnectionInfo
from consumers.registry import NodeRegistry

NODE = "node-test"


async def _register(user_id: int, portfolios: list[int]) -> None:
    node = NodeRegistry(NODE)
    info: ConnectionInfo = {
        "connection_id": f"test-{user_id}",
        "node": NODE,
        "user_id": user_id,
        "username": f"u{user_id}",
        "auth": "token",
        "connected_at": time.time(),
        "assets": [],
        "portfolios": portfolios,
    }
    try:
        await node.heartbeat([])
        assert await node.admit(info, limit=5)
    finally:
        await node.close()


async def _forget() -> None:
    node = NodeRegistry(NODE)
    try:
        await node.forget_node()
    finally:
        await node.close()


@contextmanager
def live_connection(user_id: int, portfolios: list[int]) -> Iterator[None]:
    """A user connected (on a live node) and subscribed to these portfolios, until exit."""
    asyncio.run(_register(user_id, portfolios))
    try:
        yield
    finally:
        asyncio.run(_forget())
