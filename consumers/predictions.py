"""StockPredictionsConsumer at /ws/stock_predictions/ (docs/protocol.md): answers
{"stock_symbol"} with a forecast computed from stored history. No envelope.

The same authentication and limits as /ws/realtime/: it registers with the process hub
(consumers/hub.py) as a `Member`, so its connections count toward the per-user connection
limit across every Daphne process, it is closed when idle (4408), and its credentials are
re-checked (4401/4403). It joins no push group: nothing is pushed to it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from backend.market.services.forecast import Forecast, InsufficientHistory, forecast_create

from . import schema
from .hub import Hub, Member
from .policy import REFUSE, TOO_LARGE, TOO_MANY, RateLimiter, admission, message_too_large


@database_sync_to_async
def _forecast(symbol: str, horizon_minutes: int | None) -> Forecast:
    return forecast_create(symbol=symbol, horizon_minutes=horizon_minutes)


def _is_ping(text_data: str | None) -> bool:
    try:
        message = json.loads(text_data or "")
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("type") == "ping"


class StockPredictionsConsumer(Member, AsyncWebsocketConsumer):
    channel_layer_alias = None

    async def connect(self) -> None:
        self.member_start()
        self.limiter = RateLimiter()
        verdict = await admission(self.scope)
        if verdict == REFUSE:
            await self.close()
            return
        await self.accept()
        if verdict is not None:
            self.closing = True
            await self.close(code=int(verdict))
            return
        self.user_id = int(self.scope["user"].pk)
        self.hub = Hub.current()
        if not await self.hub.register(self):
            self.hub = None
            self.closing = True
            await self.close(code=TOO_MANY)

    async def disconnect(self, code: int) -> None:
        self.closing = True
        if self.hub is not None:
            await self.hub.unregister(self)
            self.hub = None

    def close_soon(self, code: int) -> None:
        if self.closing:
            return
        self.closing = True
        asyncio.get_running_loop().create_task(self.close(code=code))

    async def answer(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing or self.hub is None:
            return
        self.last_client_message = time.monotonic()
        too_large = message_too_large(text_data, bytes_data)
        if too_large or not self.limiter.allow():
            self.closing = True
            await self.close(code=TOO_LARGE if too_large else TOO_MANY)
            return
        try:
            request = schema.parse_prediction_request(text_data)
        except schema.ProtocolError as exc:
            if exc.code == schema.INVALID_MESSAGE and _is_ping(text_data):
                await self.answer({"type": "pong"})  # keeps an otherwise quiet socket from idling out
                return
            await self.answer({"error": exc.code, "message": exc.message})
            return
        try:
            forecast = await _forecast(request.symbol, request.horizon_minutes)
        except InsufficientHistory as exc:
            await self.answer({"error": "insufficient_history", "message": str(exc), "symbol": request.symbol})
            return
        if not self.closing:
            await self.answer(forecast.as_message())
