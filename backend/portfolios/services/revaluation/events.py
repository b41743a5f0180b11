"""The events of a revaluation: a `portfolio_update` (with the moved positions) for each stored
portfolio with a live subscriber, a `position_update` for each position of a connected owner
that moved more than 1 % from its previous revaluation's price."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from backend.portfolios.payloads import portfolio_update_payload, position_update_payload
from backend.realtime.events import Event, portfolio_event, position_event

from .audience import Audience
from .result import Revalued


def events_build(revalued: Sequence[Revalued], *, now: datetime, audience: Audience) -> list[Event]:
    events: list[Event] = []
    for item in revalued:
        valuation = item.valuation
        if audience.listens_to(valuation.portfolio_id):
            payload = portfolio_update_payload(
                valuation, item.positions, value_changed=item.value_changed, valued_at=now
            )
            events.append(portfolio_event(payload))
        if audience.connected(valuation.owner_id):
            events.extend(
                position_event(valuation.owner_id, position_update_payload(p))
                for p in item.positions
                if p.significant_change
            )
    return events
