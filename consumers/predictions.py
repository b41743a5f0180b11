"""StockPredictionsConsumer at /ws/stock_predictions/ (docs/protocol.md): answers
{"stock_symbol"} with a forecast computed from stored history. No envelope; the same
authentication and limits as /ws/realtime/."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from backend.market.services.forecast import Forecast, InsufficientHistory, forecast_create

from . import schema
from .policy import REFUSE, TOO_LARGE, TOO_MANY, RateLimiter, admission, message_too_large


@database_sync_to_async
def _forecast(symbol: str, horizon_minutes: int | None) -> Forecast:
    return forecast_create(symbol=symbol, horizon_minutes=horizon_minutes)


class StockPredictionsConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = None

    async def connect(self) -> None:
        self.limiter = RateLimiter()
        self.closing = False
        verdict = await admission(self.scope)
        if verdict == REFUSE:
            await self.close()
            return
        await self.accept()
        if verdict is not None:
            self.closing = True
            await self.close(code=int(verdict))

    async def answer(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        if message_too_large(text_data, bytes_data) or not self.limiter.allow():
            self.closing = True
            await self.close(code=TOO_LARGE if message_too_large(text_data, bytes_data) else TOO_MANY)
            return
        try:
            request = schema.parse_prediction_request(text_data)
        except schema.ProtocolError as exc:
            await self.answer({"error": exc.code, "message": exc.message})
            return
        try:
            forecast = await _forecast(request.symbol, request.horizon_minutes)
        except InsufficientHistory as exc:
            await self.answer({"error": "insufficient_history", "message": str(exc), "symbol": request.symbol})
            return
        await self.answer(forecast.as_message())
