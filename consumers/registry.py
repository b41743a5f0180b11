"""This Daphne process's entries in the connection registry (the write side; the keys and
the readers are in backend/realtime/registry.py). Each process is a "node" with a heartbeat
key that expires, so a killed process's connections are forgotten within WEBSOCKET_NODE_TTL."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from backend.core.redis import redis_connect_async
from backend.realtime.registry import PREFIX, ConnectionInfo


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
        self.redis = redis_connect_async(url=url)
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
