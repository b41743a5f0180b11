"""RealtimeConsumer at /ws/realtime/ (docs/protocol.md).

Thin adapter: validation lives in schema.py, policy in policy.py, reads in the selectors,
routing and fan-out in hub.py. Pushed events do not pass through this consumer's channel:
the process hub writes them straight into the connection's outbox.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from backend.core.clock import utc_now_iso
from backend.realtime.groups import asset_group, portfolio_group, user_group

from . import schema
from .hub import Hub, Member
from .outbox import Outbox, daphne_protocol, protocol_options_shared
from .policy import REFUSE, TOO_LARGE, TOO_MANY, RateLimiter, admission, message_too_large
from .snapshots import UNKNOWN


class RealtimeConsumer(Member, AsyncWebsocketConsumer):
    # No channel per consumer: the process hub routes pushed events (consumers/hub.py).
    channel_layer_alias = None

    outbox: Outbox
    user_group: str

    async def dispatch(self, message: dict[str, Any]) -> None:
        """As Channels' dispatch, minus its `aclose_old_connections()` thread hop per client
        message: every database access here goes through database_sync_to_async, which
        closes stale connections around each call already."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self._daphne_protocol = daphne_protocol(send)
        if self._daphne_protocol is not None:
            protocol_options_shared(self._daphne_protocol)
        await super().__call__(scope, receive, send)

    # --- lifecycle --------------------------------------------------------------------
    async def connect(self) -> None:
        self.member_start()
        self.outbox = Outbox(self.connection_id, self._send_text, self._daphne_protocol)
        self.limiter = RateLimiter()
        verdict = await admission(self.scope)
        if verdict == REFUSE:
            await self.close()  # before accept: the handshake is refused (HTTP 403)
            return
        await self.accept()
        if verdict is not None:
            await self._close_with(int(verdict))
            return
        user = self.scope["user"]
        self.user_id = int(user.pk)
        self.user_group = user_group(self.user_id)
        self.hub = Hub.current()
        if not await self.hub.register(self):
            self.hub = None
            await self._close_with(TOO_MANY)
            return
        self.hub.join(self.user_group, self)
        hello = {"status": "connected", "connection_id": self.connection_id, "authenticated": True}
        await self.reply("connection", {**hello, "user_id": self.user_id})

    async def disconnect(self, code: int) -> None:
        self.closing = True
        self.outbox.close()
        if self.hub is not None:
            await self.hub.unregister(self)
            self.hub = None

    async def _close_with(self, code: int) -> None:
        self.closing = True
        self.outbox.close()
        await self.close(code=code)

    def close_soon(self, code: int) -> None:
        """Close from the hub (idle, credentials gone): stop deliveries now, close soon."""
        if self.closing:
            return
        self.closing = True
        self.outbox.close()
        asyncio.get_running_loop().create_task(self.close(code=code))

    # --- registry view (info, credentials: hub.Member) ---------------------------------
    async def _registry_update(self) -> None:
        if self.hub is not None:
            await self.hub.registry.update(self.info())

    # --- sending ----------------------------------------------------------------------
    async def _send_text(self, text: str) -> None:
        await self.send(text_data=text)

    async def reply(self, kind: str, data: Any, timestamp: str | None = None) -> None:
        if not self.closing:
            await self.outbox.send_now(kind, data, timestamp or utc_now_iso())

    async def error(self, code: str, message: str, **extra: Any) -> None:
        await self.reply("error", {"code": code, "message": message, **extra})

    def forget_asset(self, symbol: str) -> None:
        """Every source said the symbol does not exist: drop the subscription."""
        if symbol in self.assets and self.hub is not None:
            self.assets.discard(symbol)
            self.hub.leave(asset_group(symbol), self)
            asyncio.get_running_loop().create_task(self._registry_update())

    # --- receiving --------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing or self.hub is None:
            return
        self.last_client_message = time.monotonic()
        if message_too_large(text_data, bytes_data):
            await self._close_with(TOO_LARGE)
            return
        if not self.limiter.allow():
            await self._close_with(TOO_MANY)
            return
        try:
            command = schema.parse_realtime_message(text_data)
        except schema.ProtocolError as exc:
            await self.error(exc.code, exc.message)
            return
        await self._handlers[type(command)](self, command)

    def _subscription_count(self) -> int:
        return len(self.assets) + len(self.portfolios)

    def _at_limit(self) -> bool:
        return self._subscription_count() >= settings.WEBSOCKET_MAX_SUBSCRIPTIONS_PER_CONNECTION

    async def on_ping(self, command: schema.Ping) -> None:
        await self.reply("pong", {})

    async def on_subscribe_asset(self, command: schema.SubscribeAsset) -> None:
        symbol = command.symbol
        assert self.hub is not None
        is_new = symbol not in self.assets
        if is_new and self._at_limit():
            await self.error(schema.SUBSCRIPTION_LIMIT, self._limit_message(), symbol=symbol)
            return
        group = asset_group(symbol)
        # Join before reading the snapshot so no update falls between the two; hold pushes
        # so the client sees `subscribed`, the snapshot, then anything newer.
        self.outbox.hold()
        try:
            self.hub.join(group, self)
            answer = await self.hub.snapshots.asset(symbol)
            if answer is None:
                self.hub.leave(group, self)
                await self.error(schema.UNAVAILABLE, f"{symbol} cannot be subscribed right now", symbol=symbol)
                return
            status, snapshot = answer
            if status == UNKNOWN:
                self.hub.leave(group, self)
                if not is_new:
                    self.assets.discard(symbol)
                    await self._registry_update()
                await self.error(
                    schema.UNKNOWN_SYMBOL, f"{symbol} is not known to any market data source", symbol=symbol
                )
                return
            if is_new:
                self.assets.add(symbol)
                await self._registry_update()
            await self.reply("subscribed", {"channel": "asset", "symbol": symbol})
            if snapshot is not None:
                await self.reply("asset_update", snapshot)
        finally:
            self.outbox.release()

    async def on_unsubscribe_asset(self, command: schema.UnsubscribeAsset) -> None:
        if command.symbol in self.assets:
            self.assets.discard(command.symbol)
            assert self.hub is not None
            self.hub.leave(asset_group(command.symbol), self)
            await self._registry_update()
        await self.reply("unsubscribed", {"channel": "asset", "symbol": command.symbol})

    async def on_subscribe_portfolio(self, command: schema.SubscribePortfolio) -> None:
        portfolio_id = command.portfolio_id
        if portfolio_id not in self.portfolios and self._at_limit():
            await self.error(schema.SUBSCRIPTION_LIMIT, self._limit_message(), portfolio_id=portfolio_id)
            return
        assert self.hub is not None
        group = portfolio_group(portfolio_id)
        self.outbox.hold()
        try:
            self.hub.join(group, self)
            snapshot = await self.hub.snapshots.portfolio(portfolio_id, self.user_id)
            if snapshot is None:
                if portfolio_id not in self.portfolios:
                    self.hub.leave(group, self)
                await self.error(schema.NOT_FOUND, f"no portfolio {portfolio_id}", portfolio_id=portfolio_id)
                return
            if portfolio_id not in self.portfolios:
                self.portfolios.add(portfolio_id)
                await self._registry_update()
            await self.reply("subscribed", {"channel": "portfolio", "portfolio_id": portfolio_id})
            await self.reply("portfolio_update", snapshot)
        finally:
            self.outbox.release()

    async def on_unsubscribe_portfolio(self, command: schema.UnsubscribePortfolio) -> None:
        if command.portfolio_id in self.portfolios:
            self.portfolios.discard(command.portfolio_id)
            assert self.hub is not None
            self.hub.leave(portfolio_group(command.portfolio_id), self)
            await self._registry_update()
        await self.reply("unsubscribed", {"channel": "portfolio", "portfolio_id": command.portfolio_id})

    def _limit_message(self) -> str:
        return f"at most {settings.WEBSOCKET_MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions per connection"

    _handlers: dict[type, Callable[[RealtimeConsumer, Any], Awaitable[None]]] = {
        schema.Ping: on_ping,
        schema.SubscribeAsset: on_subscribe_asset,
        schema.UnsubscribeAsset: on_unsubscribe_asset,
        schema.SubscribePortfolio: on_subscribe_portfolio,
        schema.UnsubscribePortfolio: on_unsubscribe_portfolio,
    }
