"""Posting through the ledger services and reading the performance of a fixed TODAY."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal

from backend.performance.selectors import Performance, performance_read
from backend.performance.services.daily_values import daily_values_derive
from backend.portfolios.models import Portfolio
from backend.portfolios.services.transactions import (
    transaction_buy,
    transaction_dividend,
    transaction_sell,
    transaction_split,
)

from .conftest import TODAY, at, day

D = Decimal


def buy(portfolio: Portfolio, symbol: str, quantity: str, price: str, n: int, **extra: object) -> None:
    extra.setdefault("fx_rate", D(1))
    transaction_buy(
        portfolio=portfolio, symbol=symbol, quantity=D(quantity), price=D(price), executed_at=at(n), **extra
    )


def sell(portfolio: Portfolio, symbol: str, quantity: str, price: str, n: int, **extra: object) -> None:
    extra.setdefault("fx_rate", D(1))
    transaction_sell(
        portfolio=portfolio, symbol=symbol, quantity=D(quantity), price=D(price), executed_at=at(n), **extra
    )


def dividend(portfolio: Portfolio, symbol: str, amount: str, n: int, fx_rate: str = "1") -> None:
    transaction_dividend(portfolio=portfolio, symbol=symbol, amount=D(amount), fx_rate=D(fx_rate), executed_at=at(n))


def split(portfolio: Portfolio, symbol: str, ratio: str, n: int) -> None:
    transaction_split(portfolio=portfolio, symbol=symbol, ratio=ratio, fx_rate=D(1), executed_at=at(n))


def performance(portfolio: Portfolio, range_name: str = "max") -> Performance:
    daily_values_derive(portfolio_id=portfolio.pk, since=date(2000, 1, 1), today=TODAY)
    return performance_read(portfolio=portfolio, range_name=range_name, today=TODAY)


def percent(fraction: Decimal | float | None) -> Decimal | None:
    """As the endpoint sends it: percent, 2 places half-even."""
    if fraction is None:
        return None
    return round(Decimal(str(fraction)) * 100, 2)


def rate_solving(flows: Sequence[tuple[date, float]]) -> float:
    """The annual rate making the flows worth 0, by plain bisection (independent of the
    code under test)."""
    first = flows[0][0]

    def present(rate: float) -> float:
        return sum(a / (1 + rate) ** ((d - first).days / 365) for d, a in flows)

    low, high = -0.99, 100.0
    f: Callable[[float], float] = present
    assert (f(low) < 0) != (f(high) < 0)
    for _ in range(200):
        mid = (low + high) / 2
        if (f(mid) < 0) == (f(low) < 0):
            low = mid
        else:
            high = mid
    return (low + high) / 2


__all__ = ["TODAY", "D", "buy", "day", "dividend", "percent", "performance", "rate_solving", "sell", "split"]
