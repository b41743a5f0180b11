"""What the database says happened: the prices stored (PriceHistory, one row per symbol and
quote second) and the refresh cycles run (RefreshRun)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from backend.market.models import PriceHistory, RefreshRun


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def stored_changes(*, symbols: list[str], start: float, end: float) -> dict[str, list[int]]:
    """Per symbol, the quote seconds in [start, end] whose price differs from the symbol's
    previous stored price: exactly the quotes the pipeline publishes (an unchanged price is
    stored but not pushed, docs/protocol.md "Pushed events")."""
    rows = (
        PriceHistory.objects.filter(asset__symbol__in=symbols, quoted_at__gte=_at(start - 300), quoted_at__lte=_at(end))
        .order_by("asset__symbol", "quoted_at")
        .values_list("asset__symbol", "quoted_at", "price")
    )
    changes: dict[str, list[int]] = {s: [] for s in symbols}
    previous: dict[str, Any] = {}
    for symbol, quoted_at, price in rows:
        if previous.get(symbol) != price and quoted_at.timestamp() >= start:
            changes[symbol].append(int(quoted_at.timestamp()))
        previous[symbol] = price
    return changes


def stored_rows(*, symbols: list[str], start: float, end: float) -> int:
    return PriceHistory.objects.filter(
        asset__symbol__in=symbols, quoted_at__gte=_at(start), quoted_at__lte=_at(end)
    ).count()


def cycles(*, start: float, end: float, interval: float, run_tasks: dict[int, str], sends: int) -> dict[str, Any]:
    """Scheduled runs started in [start, end], and the duplicates among them:
    - the same beat send run twice (two runs of one Celery task id: `run_tasks`, from the
      worker's "refresh run N" log lines);
    - two cycles at once (a run started before the previous one finished);
    - more runs than beat sent (`sends`, from beat's log).
    Runs less than half an interval apart are listed apart, not as duplicates: after a
    worker restart the sends queued meanwhile run back to back, each its own tick (the
    product tells ticks apart by send time, backend/market/services/claims.py)."""
    runs = list(
        RefreshRun.objects.filter(kind=RefreshRun.Kind.SCHEDULED, started_at__gte=_at(start), started_at__lte=_at(end))
        .order_by("started_at")
        .values_list("pk", "started_at", "finished_at")
    )
    close: list[tuple[int, int, float]] = []
    overlaps: list[tuple[int, int, float]] = []
    for (pk_a, start_a, end_a), (pk_b, start_b, _) in itertools.pairwise(runs):
        apart = (start_b - start_a).total_seconds()
        if end_a is not None and end_a > start_b:
            overlaps.append((pk_a, pk_b, (end_a - start_b).total_seconds()))
        elif apart < interval / 2:
            close.append((pk_a, pk_b, apart))
    by_task: dict[str, list[int]] = {}
    for pk, _, _ in runs:
        if pk in run_tasks:
            by_task.setdefault(run_tasks[pk], []).append(pk)
    same_send = [pks for pks in by_task.values() if len(pks) > 1]
    unfinished = [pk for pk, started, finished in runs if finished is None and started.timestamp() < end - 30]
    return {
        "runs": len(runs),
        "beat_sends": sends,
        "expected": int((end - start) / interval),
        "duplicates": len(same_send) + len(overlaps) + max(0, len(runs) - sends),
        "same_send": same_send,
        "overlaps": overlaps,
        "excess_over_sends": max(0, len(runs) - sends),
        "close": close,
        "unfinished": unfinished,
        "runs_without_task": sum(1 for pk, _, _ in runs if pk not in run_tasks),
    }
