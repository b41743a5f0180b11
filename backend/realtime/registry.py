"""Who is connected, across every Daphne process, kept in Redis: the read side.

Each Daphne process (a "node") writes its own keys and refreshes a heartbeat key with an
expiry; readers count only nodes whose heartbeat is alive and delete the keys of dead ones,
so a killed process's connections are forgotten within WEBSOCKET_NODE_TTL seconds.

The writer is each Daphne process's own (`consumers/registry.py`). Keys (prefix `tf:ws:`):
  nodes                  set of node ids
  alive:<node>           heartbeat, expires
  conns:<node>           hash connection_id -> JSON {user_id, username, auth, connected_at, assets, portfolios}
  users:<node>           hash user_id -> open connections of that user on the node
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

import redis

from backend.core.redis import redis_connect

PREFIX = "tf:ws:"


class ConnectionInfo(TypedDict):
    connection_id: str
    node: str
    user_id: int
    username: str
    auth: str
    connected_at: float
    assets: list[str]
    portfolios: list[int]


class ConnectionManager:
    """Read side (sync), for the health endpoint, the monitor command and the pipeline."""

    def __init__(self, client: redis.Redis | None = None) -> None:
        self._client = client

    @property
    def redis(self) -> redis.Redis:
        if self._client is None:
            self._client = redis_connect()
        return self._client

    def live_nodes(self) -> list[str]:
        nodes = sorted(n.decode() if isinstance(n, bytes) else str(n) for n in self.redis.smembers(f"{PREFIX}nodes"))
        if not nodes:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for node in nodes:
            pipe.exists(f"{PREFIX}alive:{node}")
        alive = pipe.execute()
        dead = [n for n, a in zip(nodes, alive, strict=True) if not a]
        if dead:
            pipe = self.redis.pipeline(transaction=False)
            for node in dead:
                pipe.delete(f"{PREFIX}conns:{node}", f"{PREFIX}users:{node}")
                pipe.srem(f"{PREFIX}nodes", node)
            pipe.execute()
        return [n for n, a in zip(nodes, alive, strict=True) if a]

    def connections(self) -> list[ConnectionInfo]:
        nodes = self.live_nodes()
        if not nodes:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for node in nodes:
            pipe.hvals(f"{PREFIX}conns:{node}")
        result: list[ConnectionInfo] = []
        for values in pipe.execute():
            result.extend(json.loads(v) for v in values)
        return result

    def get_connection_count(self) -> int:
        nodes = self.live_nodes()
        pipe = self.redis.pipeline(transaction=False)
        for node in nodes:
            pipe.hlen(f"{PREFIX}conns:{node}")
        return int(sum(pipe.execute())) if nodes else 0

    def get_authenticated_user_count(self) -> int:
        return len({c["user_id"] for c in self.connections()})

    def get_user_connections(self, user: Any) -> list[ConnectionInfo]:
        user_id = int(getattr(user, "pk", user))
        return [c for c in self.connections() if c["user_id"] == user_id]

    def get_total_asset_subscriptions(self) -> int:
        return sum(len(c["assets"]) for c in self.connections())

    def get_total_portfolio_subscriptions(self) -> int:
        return sum(len(c["portfolios"]) for c in self.connections())

    def stats(self) -> dict[str, int]:
        conns = self.connections()
        return {
            "total_connections": len(conns),
            "authenticated_users": len({c["user_id"] for c in conns}),
            "asset_subscriptions": sum(len(c["assets"]) for c in conns),
            "portfolio_subscriptions": sum(len(c["portfolios"]) for c in conns),
        }

    def subscribed_symbols(self) -> set[str]:
        return {s for c in self.connections() for s in c["assets"]}

    def listeners(self) -> tuple[set[int], set[int]]:
        """(portfolio ids some live connection subscribes to, ids of users with a live
        connection), on every Daphne process: who can receive a `portfolio_update` and a
        `position_update` right now. One pass over the registry."""
        portfolios: set[int] = set()
        users: set[int] = set()
        for connection in self.connections():
            users.add(int(connection["user_id"]))
            portfolios.update(int(p) for p in connection["portfolios"])
        return portfolios, users


def subscribed_symbols() -> set[str]:
    """Symbols some live client subscribes to, on any Daphne process (the pipeline adds these
    to its tracked set)."""
    manager = ConnectionManager()
    try:
        return manager.subscribed_symbols()
    finally:
        manager.redis.close()
