"""Who can hear about a revaluation: only the events someone can receive are built.

A `portfolio_update` goes to a portfolio with a live subscriber, a `position_update` to an
owner with a live connection, and positions are read only for those. Publishing to a group
nobody listens to was a no-op anyway, and a client that subscribes later gets a snapshot at
the latest quotes on subscribe.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from backend.portfolios.models import Portfolio
from backend.portfolios.sql import AnyOf
from backend.realtime.registry import ConnectionManager

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Audience:
    """Who can receive a run's events. None: anyone (build every event)."""

    portfolio_ids: frozenset[int] | None = None  # with a live subscriber
    owner_ids: frozenset[int] | None = None  # with a live connection

    EVERYONE: ClassVar[Audience]

    @property
    def everyone(self) -> bool:
        return self.portfolio_ids is None

    def listens_to(self, portfolio_id: int) -> bool:
        return self.portfolio_ids is None or portfolio_id in self.portfolio_ids

    def connected(self, owner_id: int) -> bool:
        return self.owner_ids is None or owner_id in self.owner_ids

    def hears_about(self, portfolio_id: int, owner_id: int) -> bool:
        return self.listens_to(portfolio_id) or self.connected(owner_id)

    def portfolios_heard(self, ids: Sequence[int]) -> Sequence[int]:
        """Those of these portfolios (a list, or a range of ids) someone can hear about:
        subscribed, or the owner is connected (one indexed query for the owners' portfolios).
        Only the audience's own, small, sets are walked."""
        if self.portfolio_ids is None or self.owner_ids is None:
            return ids
        members = ids if isinstance(ids, range) else frozenset(ids)
        heard = {pk for pk in self.portfolio_ids if pk in members}
        if self.owner_ids:
            owned = Portfolio.objects.filter(AnyOf("owner_id", self.owner_ids)).values_list("pk", flat=True)
            heard.update(pk for pk in owned if pk in members)
        return sorted(heard)

    def portfolios_listened(self, ids: Sequence[int]) -> list[int] | None:
        """Those of these portfolios (a list, or a range of ids) with a live subscriber;
        None: all of them."""
        if self.portfolio_ids is None:
            return None
        members = ids if isinstance(ids, range) else frozenset(ids)
        return sorted(pk for pk in self.portfolio_ids if pk in members)


Audience.EVERYONE = Audience()


def audience_live() -> Audience:
    """Who is connected now, on every Daphne process (the connection registry). If the
    registry cannot be read, everyone: every event is built."""
    manager = ConnectionManager()
    try:
        portfolios, owners = manager.listeners()
    except Exception:
        logger.warning("connection registry unreadable: building every event", exc_info=True)
        return Audience.EVERYONE
    finally:
        manager.redis.close()
    return Audience(frozenset(portfolios), frozenset(owners))
