"""The performance call's body (docs/returns.md, "The endpoint") as sent: money and
percentages rounded half-even to 2 places (the figures by `backend.realtime.payloads.to_wire`,
the series' thousands of points once, here, as they are built)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from backend.realtime.payloads import to_wire

if TYPE_CHECKING:
    from backend.performance.selectors import Benchmark, Performance

HUNDRED = Decimal(100)
CENT = Decimal("0.01")


def _cents(value: Decimal) -> float:
    return float(value.quantize(CENT, rounding=ROUND_HALF_EVEN))


def _percent(fraction: Decimal | None) -> Decimal | None:
    return None if fraction is None else fraction * HUNDRED


def performance_payload(performance: Performance, benchmark: Benchmark | None = None) -> dict[str, Any]:
    p = performance
    body: dict[str, Any] = to_wire(
        {
            "range": p.range,
            "start": p.start.isoformat(),
            "end": p.end.isoformat(),
            "currency": p.currency,
            "start_value": p.start_value,
            "end_value": p.end_value,
            "net_flows": p.net_flows,
            "twr_percent": _percent(p.twr),
            "irr_percent": _percent(p.irr),
            "realized_gain": p.realized_gain,
            "unrealized_gain": p.unrealized_gain,
            "dividends": p.dividends,
            "fees": p.fees,
        }
    )
    body["series"] = [
        {"date": d.date.isoformat(), "value": _cents(d.value), "net_flows": _cents(d.net_flows)} for d in p.series
    ]
    if benchmark is not None:
        body["benchmark"] = {
            "symbol": benchmark.symbol,
            "return_percent": to_wire(_percent(benchmark.change)),
            "series": [{"date": day.isoformat(), "value": _cents(close)} for day, close in benchmark.series],
        }
    return body
