"""Reads of daily values: a portfolio's performance over a range, a benchmark's over the
same days, and which portfolios a symbol's history concerns (docs/returns.md)."""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.db import connection
from django.db.models import Q

from backend.market.currency import currencies_of_major, pair_parse
from backend.market.models import Asset
from backend.performance.models import DailyValue
from backend.performance.replay import ledger_read, rows_derive
from backend.performance.returns import twr, xirr
from backend.performance.sql import Day, closes_read, day_figures
from backend.portfolios.models import Portfolio, Transaction

ZERO = Decimal(0)
HUNDRED = Decimal(100)
RANGES = ("1d", "1w", "1m", "3m", "ytd", "1y", "max")
DEFAULT_RANGE = "max"


class UnknownBenchmark(ValueError):
    code = "unknown_benchmark"


def _months_back(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def range_start(*, range_name: str, today: date, first_day: date | None) -> date:
    """The day whose end value the range starts from (its own flows are not the range's)."""
    if range_name == "1d":
        return today - timedelta(days=1)
    if range_name == "1w":
        return today - timedelta(days=7)
    if range_name == "1m":
        return _months_back(today, 1)
    if range_name == "3m":
        return _months_back(today, 3)
    if range_name == "ytd":
        return date(today.year - 1, 12, 31)
    if range_name == "1y":
        return _months_back(today, 12)
    # max: the day before the first transaction (worth nothing)
    return (first_day or today) - timedelta(days=1)


class Point(NamedTuple):
    date: date
    value: Decimal
    net_flows: Decimal


_EMPTY_FIGURES = (ZERO, ZERO, ZERO, ZERO, ZERO, ZERO)
ROW = ("date", "value", "net_flows", "cost", "realized_gain", "dividends", "fees")


def _live(portfolio_id: int, today: date) -> Day | None:
    """Today's row at the latest quotes (None: no transaction yet). On PostgreSQL the
    set-based statement values the stored positions; elsewhere (SQLite, `make run`'s
    default) the ledger is replayed for the day."""
    if connection.vendor == "postgresql":
        return day_figures(day=today, live=True, portfolio_ids=[portfolio_id]).get(portfolio_id)
    ledger = ledger_read(portfolio_id)
    if ledger is None or not ledger.rows or ledger.rows[0][1] > today:
        return None
    row = rows_derive(portfolio_id, ledger, today, today)[0]
    return Day(today, row.value, row.net_flows, row.cost, row.realized_gain, row.dividends, row.fees)


@dataclass(frozen=True)
class Performance:
    range: str
    start: date
    end: date
    currency: str
    start_value: Decimal
    end_value: Decimal
    net_flows: Decimal
    twr: Decimal  # a fraction
    irr: Decimal | None  # a fraction, annual
    realized_gain: Decimal
    unrealized_gain: Decimal
    dividends: Decimal
    fees: Decimal
    series: list[Point]


def performance_read(*, portfolio: Portfolio, range_name: str, today: date) -> Performance:
    """The range's figures from the stored rows before today and today's at the latest
    quotes. The range's points are read as (date, value, net_flows) only: the rows at its two
    ends give the ledger figures."""
    stored = DailyValue.objects.filter(portfolio_id=portfolio.pk, date__lt=today)
    live = _live(portfolio.pk, today)
    first_day = stored.order_by("date").values_list("date", flat=True).first()
    if first_day is None and live is not None:
        first_day = live.date
    start = range_start(range_name=range_name, today=today, first_day=first_day)
    opening_row = stored.filter(date__lte=start).order_by("-date").values_list(*ROW).first()
    opening = Day(*opening_row) if opening_row else Day(start, *_EMPTY_FIGURES)
    inside = [Point(*row) for row in stored.filter(date__gt=start).order_by("date").values_list(*ROW[:3])]
    closing = live
    if closing is None and inside:
        last = stored.filter(date=inside[-1].date).values_list(*ROW).first()
        closing = Day(*last) if last else None
    if live is not None:
        inside.append(Point(live.date, live.value, live.net_flows))
    closing = closing or opening
    irr = xirr([(start, -opening.value), *((p.date, -p.net_flows) for p in inside), (today, closing.value)])
    starts_on_a_row = opening_row is not None and opening.date == start
    series = ([Point(opening.date, opening.value, opening.net_flows)] if starts_on_a_row else []) + inside
    return Performance(
        range=range_name,
        start=start,
        end=today,
        currency=portfolio.base_currency,
        start_value=opening.value,
        end_value=closing.value,
        net_flows=sum((p.net_flows for p in inside), ZERO),
        twr=twr(start_value=opening.value, days=((p.value, p.net_flows) for p in inside)),
        irr=irr,
        realized_gain=closing.realized_gain - opening.realized_gain,
        unrealized_gain=closing.value - closing.cost,
        dividends=closing.dividends - opening.dividends,
        fees=closing.fees - opening.fees,
        series=series,
    )


@dataclass(frozen=True)
class Benchmark:
    symbol: str
    change: Decimal | None  # a fraction: the last close over the first, less 1
    series: list[tuple[date, Decimal]]


def benchmark_read(*, symbol: str, start: date, end: date, today: date) -> Benchmark:
    """A tracked symbol's closes over [start, end]; UnknownBenchmark otherwise."""
    asset_id = (
        Asset.objects.filter(symbol=symbol, is_active=True, tracking_status=Asset.TrackingStatus.TRACKED)
        .values_list("pk", flat=True)
        .first()
    )
    if asset_id is None:
        raise UnknownBenchmark(f"{symbol} is not a tracked symbol: a benchmark must be one")
    closes = closes_read(asset_ids=[asset_id], first=start, last=end, today=today).get(asset_id, {})
    series = sorted(closes.items())
    change = series[-1][1] / series[0][1] - 1 if len(series) > 1 else None
    return Benchmark(symbol, change, series)


def portfolios_touching(*, symbols: Iterable[str]) -> list[int]:
    """Portfolios with transactions in one of these symbols, or in an asset whose currency
    converts into their base through one of them (a pair)."""
    wanted = sorted(set(symbols))
    touching = Q(asset__symbol__in=wanted)
    for symbol in wanted:
        pair = pair_parse(symbol)
        if pair is not None:
            touching |= Q(asset__currency__in=currencies_of_major(pair[0]), portfolio__base_currency=pair[1])
    rows = Transaction.objects.filter(touching).values_list("portfolio_id", flat=True).distinct()
    return sorted(rows)
