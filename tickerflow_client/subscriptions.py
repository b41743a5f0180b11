"""The subscriptions a client means to hold: remembered as intent, sent when connected,
sent again after every reconnect or seq gap (the server answers each with a snapshot)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .rules import normalize_symbol, portfolio_id_check


class Subscriptions:
    """Mixed into TickerflowClient, which supplies `send` and `is_connected`."""

    _subscriptions: dict[str, tuple[str, dict[str, Any]]]
    is_connected: bool

    async def send(self, message_type: str, data: Mapping[str, Any] | None = None) -> bool:
        raise NotImplementedError

    @property
    def subscriptions(self) -> list[tuple[str, dict[str, Any]]]:
        """What is sent again after a reconnect: (type, data) pairs."""
        return list(self._subscriptions.values())

    async def _subscribe(self, key: str, message_type: str, data: dict[str, Any]) -> bool:
        self._subscriptions[key] = (message_type, data)
        return await self.send(message_type, data) if self.is_connected else False

    async def _unsubscribe(self, key: str, message_type: str, data: dict[str, Any]) -> bool:
        had = self._subscriptions.pop(key, None) is not None
        return await self.send(message_type, data) if had and self.is_connected else False

    async def subscribe_asset(self, symbol: str) -> bool:
        """Subscribes now if connected (returns True), and after every reconnect."""
        clean = normalize_symbol(symbol)
        return await self._subscribe(f"asset:{clean}", "subscribe_asset", {"symbol": clean})

    async def unsubscribe_asset(self, symbol: str) -> bool:
        clean = normalize_symbol(symbol)
        return await self._unsubscribe(f"asset:{clean}", "unsubscribe_asset", {"symbol": clean})

    async def subscribe_portfolio(self, portfolio_id: int) -> bool:
        pid = portfolio_id_check(portfolio_id)
        return await self._subscribe(f"portfolio:{pid}", "subscribe_portfolio", {"portfolio_id": pid})

    async def unsubscribe_portfolio(self, portfolio_id: int) -> bool:
        pid = portfolio_id_check(portfolio_id)
        return await self._unsubscribe(f"portfolio:{pid}", "unsubscribe_portfolio", {"portfolio_id": pid})

    async def resubscribe_all(self) -> int:
        """Sends every subscription again (the server answers each with a fresh snapshot);
        returns how many were sent."""
        if not self.is_connected:
            return 0
        sent = 0
        for message_type, data in self.subscriptions:
            sent += await self.send(message_type, data)
        return sent
