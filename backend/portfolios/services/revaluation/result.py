"""What a revaluation returns: its counts, the stored portfolios someone hears about, and the
events built for them (the caller publishes them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.portfolios.position_valuation import PositionValuation
from backend.portfolios.valuation import PortfolioValuation
from backend.realtime.events import Event

from .audience import Audience


@dataclass(frozen=True)
class Revalued:
    """One stored portfolio someone hears about."""

    # As stored; the PostgreSQL pass returns zeros for one only its owner hears about (the
    # owner is told of positions only).
    valuation: PortfolioValuation
    positions: list[PositionValuation]  # priced other than at its previous revaluation
    value_changed: bool


@dataclass
class RevalueResult:
    portfolios_revalued: int = 0
    portfolios_changed: int = 0  # stored
    snapshots_created: int = 0
    positions_read: int = 0  # moved positions of changed portfolios someone hears about
    revalued: list[Revalued] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def record(
        self,
        valuation: PortfolioValuation,
        positions: list[PositionValuation],
        *,
        value_changed: bool,
        audience: Audience,
    ) -> None:
        """A stored portfolio: kept (with its moved positions) if someone hears about it."""
        if audience.hears_about(valuation.portfolio_id, valuation.owner_id):
            self.revalued.append(Revalued(valuation, positions, value_changed))
            self.positions_read += len(positions)

    def counts_add(self, other: RevalueResult) -> None:
        self.portfolios_revalued += other.portfolios_revalued
        self.portfolios_changed += other.portfolios_changed
        self.snapshots_created += other.snapshots_created
        self.positions_read += other.positions_read

    def merge(self, other: RevalueResult) -> None:
        self.counts_add(other)
        self.revalued.extend(other.revalued)
        self.events.extend(other.events)
