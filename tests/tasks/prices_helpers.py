"""Shared set-up for the price pipeline's live tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User

from backend.market.models import Asset, RefreshRun
from backend.portfolios.models import Portfolio, Position
from config.celery import app
from tests.fakes.upstream import FakeUpstream


def hold(symbols: Iterable[str], *, username: str = "holder") -> list[Asset]:
    """Make the symbols tracked: active assets held in a position."""
    user, _ = User.objects.get_or_create(username=username)
    portfolio, _ = Portfolio.objects.get_or_create(owner=user, name="Main")
    assets = [Asset.objects.get_or_create(symbol=s)[0] for s in symbols]
    Position.objects.bulk_create(
        [Position(portfolio=portfolio, asset=a, quantity=Decimal("1"), average_cost=Decimal("1")) for a in assets]
    )
    return assets


def price_all(fake: FakeUpstream, symbols: Iterable[str], base: float = 100.0) -> None:
    for i, s in enumerate(symbols):
        fake.set_quote(s, base + i, previous_close=base + i - 1, volume=1000 + i)


def wait_for(condition: Callable[[], object], timeout: float = 60, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"no {what} within {timeout} s")


def wait_for_run(run_id: int, timeout: float = 60) -> RefreshRun:
    wait_for(
        lambda: RefreshRun.objects.filter(pk=run_id, finished_at__isnull=False).exists(), timeout, f"run {run_id} end"
    )
    return RefreshRun.objects.get(pk=run_id)


def worker_env(fake: FakeUpstream, sources: tuple[str, ...], **extra: str) -> dict[str, Any]:
    env: dict[str, Any] = fake.env(sources)
    env.update(extra)
    return env


def run_cycle() -> int:
    """One scheduled cycle, dispatched by a real worker; its RefreshRun id."""
    result = app.send_task("tasks.prices.refresh_prices").get(timeout=30)
    assert not result["skipped_locked"], result
    return int(result["run_id"])
