"""What a subscribe answers with, served from the process's memory in the steady state.

Every Daphne process's hub sees every published batch, so its memory of the latest
`asset_update` of each symbol is as fresh as what any client was sent; what it has not seen
(a new process, a quiet symbol) is read in batches: the keys asked for while the database
thread is busy go in one query (consumers/batching.py). A portfolio's snapshot (and its
owner, for the ownership check) is kept a short while and forgotten on any
`portfolio_update` / `position_update` the hub routes for it. docs/scale.md has the figures.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from backend.market.models import Asset
from backend.market.selectors import quotes_cached
from backend.market.services.tracking import asset_track
from backend.portfolios.models import Portfolio, Position
from backend.portfolios.payloads import portfolio_update_payload
from backend.portfolios.position_valuation import by_portfolio, position_valuations
from backend.portfolios.valuation import portfolio_valuations
from backend.realtime.payloads import to_wire

from .batching import BatchLoader, TtlCache

logger = logging.getLogger(__name__)

UNKNOWN = str(Asset.TrackingStatus.UNKNOWN)
TRACKED = str(Asset.TrackingStatus.TRACKED)

# (tracking status, the latest `asset_update` on the wire or None before the first quote)
AssetAnswer = tuple[str, dict[str, Any] | None]
# (owner id, the `portfolio_update` snapshot on the wire)
PortfolioAnswer = tuple[int, dict[str, Any]]


def asset_answers(symbols: list[str]) -> dict[str, AssetAnswer]:
    """Tracking status and latest quote of each symbol: one query for the statuses, one
    cache read (and one query for its misses) for the quotes. A new well-formed symbol starts
    being tracked (and is fetched promptly) as a side effect. A symbol whose tracking failed
    is left out (the subscriber gets an error, the others their answers)."""
    statuses = {s: str(t) for s, t in Asset.objects.filter(symbol__in=symbols).values_list("symbol", "tracking_status")}
    for symbol in symbols:
        if symbol not in statuses:
            try:
                statuses[symbol] = str(asset_track(symbol=symbol).tracking_status)
            except Exception:
                logger.exception("tracking %s for a subscriber failed", symbol)
    quotes = quotes_cached(symbols=[s for s, status in statuses.items() if status != UNKNOWN])
    return {s: (status, to_wire(dict(quotes[s])) if s in quotes else None) for s, status in statuses.items()}


def portfolio_answers(portfolio_ids: list[int]) -> dict[int, PortfolioAnswer]:
    """Snapshots of these portfolios with their owners, whoever asked: the same figures as
    backend.portfolios.selectors.portfolio_snapshot, a handful of queries for all of them."""
    valuations = portfolio_valuations(portfolios=Portfolio.objects.filter(pk__in=portfolio_ids))
    positions = by_portfolio(position_valuations(positions=Position.objects.filter(portfolio_id__in=portfolio_ids)))
    now = datetime.now(UTC)
    return {
        v.portfolio_id: (
            v.owner_id,
            to_wire(
                dict(portfolio_update_payload(v, positions.get(v.portfolio_id, []), value_changed=False, valued_at=now))
            ),
        )
        for v in valuations
    }


def _ttl() -> float:
    return float(settings.WEBSOCKET_SNAPSHOT_TTL)


class Snapshots:
    """One process's memory of subscribe answers, and the loaders behind its misses."""

    def __init__(self) -> None:
        self.assets: TtlCache[str, AssetAnswer] = TtlCache(_ttl)
        self.asset_loader: BatchLoader[str, AssetAnswer] = BatchLoader(asset_answers)
        self.portfolio_loader: BatchLoader[int, PortfolioAnswer] = BatchLoader(portfolio_answers)

    async def asset(self, symbol: str) -> AssetAnswer | None:
        """None: the answer could not be read (the subscriber gets an error)."""
        found, answer = self.assets.get(symbol)
        if found:
            return answer
        answer = await self.asset_loader.get(symbol)
        # An event routed during the load is newer than what the load read: keep the event's.
        if answer is not None and not self.assets.get(symbol)[0]:
            self.assets.put(symbol, answer)
        return answer

    async def portfolio(self, portfolio_id: int, user_id: int) -> dict[str, Any] | None:
        """The snapshot when the portfolio exists and is the user's; None for both "no such
        portfolio" and "not yours", as the protocol answers them the same way. Read at each
        subscribe, never remembered: a rename, a deletion or a new transaction must show at
        once, and no event announces the first two. Concurrent subscribes share one load."""
        answer = await self.portfolio_loader.get(portfolio_id)
        if answer is None or answer[0] != user_id:
            return None
        return answer[1]

    def observe(self, event: dict[str, Any]) -> None:
        """Learn from a routed event: the newest quote of a symbol, a symbol gone unknown."""
        kind, data = event["type"], event["data"]
        if kind == "asset_update":
            symbol = str(data["symbol"])
            self.assets.put(symbol, (TRACKED, data))
        elif kind == "error" and isinstance(data, dict) and data.get("code") == "unknown_symbol":
            symbol = str(data.get("symbol", ""))
            self.assets.put(symbol, (UNKNOWN, None))

    def forget(self) -> None:
        """After a gap in what the hub received (Redis outage, a publisher's resync): nothing
        remembered can be trusted."""
        self.assets.clear()

    def prune(self) -> None:
        self.assets.prune()
