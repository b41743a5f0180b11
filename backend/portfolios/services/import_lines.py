"""What the CSV import's formats share: a parsed line, the result, cell parsing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation

from .transactions import TransactionInput


@dataclass
class ImportResult:
    created: int = 0
    duplicates: int = 0
    errors: list[dict[str, object]] = field(default_factory=list)

    def error(self, line: int, message: str) -> None:
        self.errors.append({"line": line, "message": message})


@dataclass(frozen=True)
class Line:
    number: int  # in the file, the header being line 1
    data: TransactionInput
    minor_units: bool = False  # a preset's prices in the major currency of a minor-unit asset


class LineError(ValueError):
    pass


def decimal_cell(value: str, name: str) -> Decimal | None:
    value = value.strip()
    if not value:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise LineError(f"{name}: {value!r} is not a number") from exc
    if not number.is_finite():
        raise LineError(f"{name}: {value!r} is not a number")
    return number


def date_cell(value: str) -> datetime | None:
    """ISO 8601: a date (midnight UTC) or a date and time (UTC unless it says otherwise)."""
    value = value.strip()
    if not value:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise LineError(f"date: {value!r} is not an ISO 8601 date") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def line_id(cells: Iterable[str], seen: dict[str, int]) -> str:
    """`line:` + a hash of the line's cells and how many identical lines came before it (two
    identical trades in one file are two transactions)."""
    text = "\x1f".join(c.strip() for c in cells)
    seen[text] = seen.get(text, 0) + 1
    return "line:" + hashlib.sha256(f"{text}\x1e{seen[text]}".encode()).hexdigest()[:40]
