"""Who is connected, across every Daphne process, kept in Redis.

Each Daphne process (a "node") writes its own keys and refreshes a heartbeat key with an
expiry; readers count only nodes whose heartbeat is alive and delete the keys of dead ones,
so a killed process's connections are forgotten within WEBSOCKET_NODE_TTL seconds.

Keys (prefix `tf:ws:`):
  nodes                  set of node ids
  alive:<node>           heartbeat, expires
  conns:<node>           hash connection_id -> JSON {user_id, username, auth, connected_at, assets, portfolios}
  users:<node>           hash user_id -> open connections of that user on the node
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterable
from typing import Any, TypedDict

import redis
import redis.asyncio as aioredis
from django.conf import settings

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


def new_node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# Admission and the per-user limit in one atomic step, counting only live nodes (and
# sweeping the keys of dead ones on the way).
_ADMIT = """
local prefix, node, uid, limit, conn, info = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6]
local total = 0
for _, n in ipairs(redis.call('SMEMBERS', prefix .. 'nodes')) do
  if redis.call('EXISTS', prefix .. 'alive:' .. n) == 1 then
    total = total + tonumber(redis.call('HGET', prefix .. 'users:' .. n, uid) or '0')
  elseif n ~= node then
    redis.call('DEL', prefix .. 'conns:' .. n, prefix .. 'users:' .. n)
    redis.call('SREM', prefix .. 'nodes', n)
  end
end
if total >= limit then return 0 end
redis.call('HINCRBY', prefix .. 'users:' .. node, uid, 1)
redis.call('HSET', prefix .. 'conns:' .. node, conn, info)
return 1
"""

_RELEASE = """
local prefix, node, uid, conn = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('HDEL', prefix .. 'conns:' .. node, conn) == 1 then
  if redis.call('HINCRBY', prefix .. 'users:' .. node, uid, -1) <= 0 then
    redis.call('HDEL', prefix .. 'users:' .. node, uid)
  end
end
return 1
"""


def _info_json(info: ConnectionInfo) -> str:
    return json.dumps(info, separators=(",", ":"))


class NodeRegistry:
    """The async writer one Daphne process uses for its own connections."""

    def __init__(self, node: str, url: str | None = None) -> None:
        self.node = node
        self.redis = aioredis.Redis.from_url(url or settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=5)
        self._admit = self.redis.register_script(_ADMIT)
        self._release = self.redis.register_script(_RELEASE)

    async def heartbeat(self, connections: Iterable[ConnectionInfo]) -> None:
        """Refresh the heartbeat; after a Redis restart (our keys gone while we hold
        connections) rewrite everything this node knows."""
        ttl: int = settings.WEBSOCKET_NODE_TTL
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(f"{PREFIX}alive:{self.node}", str(time.time()), ex=ttl)
        pipe.sadd(f"{PREFIX}nodes", self.node)
        pipe.exists(f"{PREFIX}conns:{self.node}")
        *_, exists = await pipe.execute()
        infos = list(connections)
        if infos and not exists:
            users: dict[Any, Any] = {}
            for info in infos:
                users[str(info["user_id"])] = int(users.get(str(info["user_id"]), 0)) + 1
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(f"{PREFIX}users:{self.node}")
            pipe.hset(f"{PREFIX}conns:{self.node}", mapping={i["connection_id"]: _info_json(i) for i in infos})
            pipe.hset(f"{PREFIX}users:{self.node}", mapping=users)
            await pipe.execute()

    async def admit(self, info: ConnectionInfo, limit: int) -> bool:
        result = await self._admit(
            args=[PREFIX, self.node, str(info["user_id"]), limit, info["connection_id"], _info_json(info)]
        )
        return bool(result)

    async def update(self, info: ConnectionInfo) -> None:
        await self.redis.hset(f"{PREFIX}conns:{self.node}", info["connection_id"], _info_json(info))

    async def release(self, info: ConnectionInfo) -> None:
        await self._release(args=[PREFIX, self.node, str(info["user_id"]), info["connection_id"]])

    async def forget_node(self) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(f"{PREFIX}alive:{self.node}", f"{PREFIX}conns:{self.node}", f"{PREFIX}users:{self.node}")
        pipe.srem(f"{PREFIX}nodes", self.node)
        await pipe.execute()

    async def close(self) -> None:
        await self.redis.aclose()


class ConnectionManager:
    """Read side (sync), for the health endpoint, the monitor command and the pipeline.
    The broadcast_* methods publish through consumers.publish like every other sender."""

    def __init__(self, client: redis.Redis | None = None) -> None:
        self._client = client

    @property
    def redis(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=3)
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

    def broadcast_to_user(self, user: Any, message: dict[str, Any]) -> int:
        from .groups import user_group
        from .publish import custom_event, publish_batch

        return publish_batch([custom_event(user_group(int(getattr(user, "pk", user))), message)])

    def broadcast_to_asset_subscribers(self, symbol: str, message: dict[str, Any]) -> int:
        from backend.market.symbols import symbol_normalize

        from .groups import asset_group
        from .publish import custom_event, publish_batch

        return publish_batch([custom_event(asset_group(symbol_normalize(symbol)), message)])

    def broadcast_to_portfolio_subscribers(self, portfolio_id: int, message: dict[str, Any]) -> int:
        from .groups import portfolio_group
        from .publish import custom_event, publish_batch

        return publish_batch([custom_event(portfolio_group(int(portfolio_id)), message)])


def subscribed_symbols() -> set[str]:
    """Symbols some live client subscribes to, on any Daphne process (the pipeline adds these
    to its tracked set)."""
    manager = ConnectionManager()
    try:
        return manager.subscribed_symbols()
    finally:
        manager.redis.close()
