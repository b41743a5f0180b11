"""Timestamps on the wire: ISO-8601 UTC with a "Z", the one format every payload uses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def iso_z(moment: datetime) -> str: ...
@overload
def iso_z(moment: None) -> None: ...
def iso_z(moment: datetime | None) -> str | None:
    """`2026-01-02T03:04:05.123456Z` for an aware datetime (None stays None)."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")


def utc_now_iso() -> str:
    return iso_z(datetime.now(UTC))
