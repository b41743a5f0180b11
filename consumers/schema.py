"""Validation of every client message on /ws/realtime/ and /ws/stock_predictions/.

The one place that turns raw frames into typed commands. Anything malformed raises
`ProtocolError` with a contract error code (docs/protocol.md), so the
consumer answers `error {code, message}` and keeps the connection open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from backend.market.symbols import InvalidSymbol, symbol_normalize

INVALID_JSON = "invalid_json"
INVALID_MESSAGE = "invalid_message"
UNKNOWN_TYPE = "unknown_type"
INVALID_SYMBOL = "invalid_symbol"
UNKNOWN_SYMBOL = "unknown_symbol"
NOT_FOUND = "not_found"
SUBSCRIPTION_LIMIT = "subscription_limit"
UNAVAILABLE = "unavailable"  # a subscribe the server could not answer now; the client may retry


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class SubscribeAsset:
    symbol: str


@dataclass(frozen=True)
class UnsubscribeAsset:
    symbol: str


@dataclass(frozen=True)
class SubscribePortfolio:
    portfolio_id: int


@dataclass(frozen=True)
class UnsubscribePortfolio:
    portfolio_id: int


Command = Ping | SubscribeAsset | UnsubscribeAsset | SubscribePortfolio | UnsubscribePortfolio


def _load_object(text: str | None) -> dict[str, Any]:
    if text is None:
        raise ProtocolError(INVALID_MESSAGE, "send text frames holding a JSON object")
    try:
        message = json.loads(text)
    except ValueError:
        raise ProtocolError(INVALID_JSON, "message is not valid JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError(INVALID_MESSAGE, "message must be a JSON object")
    return message


def _symbol(data: dict[str, Any]) -> str:
    if "symbol" not in data:
        raise ProtocolError(INVALID_MESSAGE, "data.symbol is required")
    try:
        return symbol_normalize(data["symbol"])
    except InvalidSymbol as exc:
        raise ProtocolError(INVALID_SYMBOL, str(exc)) from None


def _portfolio_id(data: dict[str, Any]) -> int:
    value = data.get("portfolio_id")
    # bool is an int in Python; a client sending true means something else.
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value > 2**63 - 1:
        raise ProtocolError(INVALID_MESSAGE, "data.portfolio_id must be a positive integer")
    return value


def parse_realtime_message(text: str | None) -> Command:
    """`{"type": ..., "data": {...}}` -> a command. `data` may be omitted for `ping`; fields
    at the top level are accepted when there is no `data` object."""
    message = _load_object(text)
    kind = message.get("type")
    if not isinstance(kind, str) or not kind:
        raise ProtocolError(INVALID_MESSAGE, "message.type must be a non-empty string")
    data = message.get("data", message)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProtocolError(INVALID_MESSAGE, "message.data must be a JSON object")
    if kind == "ping":
        return Ping()
    if kind == "subscribe_asset":
        return SubscribeAsset(_symbol(data))
    if kind == "unsubscribe_asset":
        return UnsubscribeAsset(_symbol(data))
    if kind == "subscribe_portfolio":
        return SubscribePortfolio(_portfolio_id(data))
    if kind == "unsubscribe_portfolio":
        return UnsubscribePortfolio(_portfolio_id(data))
    raise ProtocolError(UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}")


@dataclass(frozen=True)
class PredictionRequest:
    symbol: str
    horizon_minutes: int | None


MAX_HORIZON_MINUTES = 7 * 24 * 60


def parse_prediction_request(text: str | None) -> PredictionRequest:
    """`{"stock_symbol": "AAPL"}`, optionally with `horizon_minutes` (1 to one week)."""
    message = _load_object(text)
    if "stock_symbol" not in message:
        raise ProtocolError(INVALID_MESSAGE, "stock_symbol is required")
    try:
        symbol = symbol_normalize(message["stock_symbol"])
    except InvalidSymbol as exc:
        raise ProtocolError(INVALID_SYMBOL, str(exc)) from None
    horizon = message.get("horizon_minutes")
    if horizon is not None and (
        not isinstance(horizon, int) or isinstance(horizon, bool) or not 1 <= horizon <= MAX_HORIZON_MINUTES
    ):
        raise ProtocolError(INVALID_MESSAGE, f"horizon_minutes must be an integer from 1 to {MAX_HORIZON_MINUTES}")
    return PredictionRequest(symbol, horizon)
