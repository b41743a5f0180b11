"""This Daphne process's entries in the connection registry (the write side; the keys and
the readers are in backend/realtime/registry.py). Each process is a "node" with a heartbeat
key that expires, so a killed process's connections are forgotten within WEBSOCKET_NODE_TTL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from redis.asyncio import BlockingConnectionPool, Redis
from redis.typing import EncodableT, FieldT

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
        # A burst of connects waits for a pooled connection: redis-py's default pool raises
        # MaxConnectionsError past its size, which closed sockets with 1011 (docs/scale.md).
        pool = BlockingConnectionPool.from_url(
            url or settings.REDIS_URL,
            max_connections=settings.WEBSOCKET_REDIS_MAX_CONNECTIONS,
            timeout=None,
            socket_timeout=10,
            socket_connect_timeout=5,
        )
        self.redis = Redis.from_pool(pool)
        self._admit = self.redis.register_script(_ADMIT)
        self._release = self.redis.register_script(_RELEASE)
        self._updates: dict[FieldT, EncodableT] = {}
        self._update_waiters: list[asyncio.Future[None]] = []
        self._writer: asyncio.Task[None] | None = None

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
        """Rewrite a connection's entry; returns once it is in Redis. The updates of every
        connection that asks meanwhile go in one HSET: a storm of subscribes was one Redis
        round trip each, most of a reconnect storm's cost (docs/scale.md)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._updates[info["connection_id"]] = _info_json(info)
        self._update_waiters.append(done)
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_updates())
        await done

    async def _write_updates(self) -> None:
        await asyncio.sleep(0)  # let every connection woken by the same read ask first
        while self._update_waiters:
            mapping, waiters = self._updates, self._update_waiters
            self._updates, self._update_waiters = {}, []
            try:
                if mapping:  # empty when every connection asking was released meanwhile
                    await self.redis.hset(f"{PREFIX}conns:{self.node}", mapping=mapping)
            except Exception as exc:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def release(self, info: ConnectionInfo) -> None:
        # A pending or in-flight update must not write the entry back after it is deleted.
        self._updates.pop(info["connection_id"], None)
        if self._writer is not None and not self._writer.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._writer)
        await self._release(args=[PREFIX, self.node, str(info["user_id"]), info["connection_id"]])

    async def forget_node(self) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(f"{PREFIX}alive:{self.node}", f"{PREFIX}conns:{self.node}", f"{PREFIX}users:{self.node}")
        pipe.srem(f"{PREFIX}nodes", self.node)
        await pipe.execute()

    async def close(self) -> None:
        await self.redis.aclose()
