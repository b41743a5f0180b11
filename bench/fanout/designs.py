"""What the fan-out benchmark compares: the push hub against a bare Channels consumer, each on
the core and the pub/sub channel layer, and how symbols are spread over the clients."""

from __future__ import annotations

import json
from typing import Any

BATCH_SIZE = 50  # REALTIME_BATCH_SIZE: the pipeline publishes per batch

DESIGNS: dict[str, tuple[str, str, str]] = {
    # name: (ASGI app, channel layer backend, publisher style)
    "hub-core": ("config.asgi:application", "channels_redis.core.RedisChannelLayer", "hub"),
    "hub-pubsub": ("config.asgi:application", "channels_redis.pubsub.RedisPubSubChannelLayer", "hub"),
    "bare-core": ("bench.fanout.designs:bare_application", "channels_redis.core.RedisChannelLayer", "bare"),
    "bare-pubsub": ("bench.fanout.designs:bare_application", "channels_redis.pubsub.RedisPubSubChannelLayer", "bare"),
}


def symbol_names(count: int) -> list[str]:
    return [f"B{i:03d}" for i in range(count)]


def client_symbols(index: int, symbols: list[str], per_client: int) -> list[str]:
    """Distinct symbols spread evenly: each symbol gets N * per_client / len(symbols) clients."""
    stride = len(symbols) // per_client
    return [symbols[(index + k * stride) % len(symbols)] for k in range(per_client)]


# --- the bare Channels consumer (the baseline) ---------------------------------------------
_bare_app: Any = None


def _build_bare_app() -> Any:
    import django

    django.setup()
    from channels.generic.websocket import AsyncWebsocketConsumer

    from backend.realtime.groups import asset_group

    class BareConsumer(AsyncWebsocketConsumer):
        """What the Channels tutorial does: join a layer group per subscription, forward."""

        async def connect(self) -> None:
            await self.accept()
            await self.send(text_data=json.dumps({"type": "connection", "data": {}}))

        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            message = json.loads(text_data or "{}")
            symbol = message["data"]["symbol"]
            await self.channel_layer.group_add(asset_group(symbol), self.channel_name)
            ack = {"type": "subscribed", "data": {"channel": "asset", "symbol": symbol}}
            await self.send(text_data=json.dumps(ack))

        async def asset_update(self, event: dict[str, Any]) -> None:
            out = {"type": "asset_update", "data": event["data"], "timestamp": event["timestamp"]}
            await self.send(text_data=json.dumps(out))

    return BareConsumer.as_asgi()


async def bare_application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _bare_app
    if scope["type"] == "lifespan":
        return
    if _bare_app is None:
        _bare_app = _build_bare_app()
    await _bare_app(scope, receive, send)
