"""SIMULATED reference levels for well-known symbols: what the offline `simulated` source
pins its paths to, so the demo's first screen looks familiar (BTC-USD near tens of
thousands, KO near 70). These are rounded, hand-picked figures in each symbol's trading
currency (SAP.DE in EUR, VOD.L in pence), not market data, not kept up to date, and never
used by any real source. The earlier levels include the demo ledgers' trades
(backend/portfolios/demo.py), so each trade matches its day's simulated close.
docs/history-and-demo.md describes how the path uses them.
"""

from __future__ import annotations

from typing import NamedTuple

# The day of each symbol's `level`; the path returns to that level every year after it.
REFERENCE_DAY = "2025-12-01"


class Reference(NamedTuple):
    level: float  # at REFERENCE_DAY's close, in the trading currency
    sigma: float  # annual volatility of the simulated path
    earlier: tuple[tuple[str, float], ...] = ()  # (day, close) before REFERENCE_DAY


REFERENCES: dict[str, Reference] = {
    "AAPL": Reference(283.10, 0.28, (("2024-02-05", 172.50),)),
    "MSFT": Reference(486.70, 0.26, (("2024-02-05", 331.20),)),
    "GOOGL": Reference(315.10, 0.32, (("2024-04-02", 138.40),)),
    "AMZN": Reference(233.90, 0.33, (("2024-04-02", 142.80),)),
    "NVDA": Reference(179.90, 0.50, (("2024-03-11", 95.10), ("2025-06-16", 142.30))),
    "META": Reference(640.90, 0.38),
    "TSLA": Reference(430.20, 0.58),
    "BRK-B": Reference(506.50, 0.17),
    "JPM": Reference(311.40, 0.23),
    "V": Reference(332.90, 0.20),
    "JNJ": Reference(206.10, 0.17, (("2024-01-15", 158.30),)),
    "KO": Reference(70.50, 0.16, (("2024-01-15", 59.75),)),
    "XOM": Reference(116.50, 0.24, (("2024-01-22", 104.60),)),
    "SAP.DE": Reference(207.30, 0.28, (("2024-06-03", 178.40),)),  # EUR
    "VOD.L": Reference(92.60, 0.25, (("2024-06-03", 71.20),)),  # pence (GBp)
    "SPY": Reference(680.30, 0.16, (("2024-01-02", 472.70), ("2025-01-02", 584.60))),
    "QQQ": Reference(617.20, 0.21, (("2024-05-20", 402.00),)),
    "VTI": Reference(334.60, 0.17, (("2024-01-22", 228.90),)),
    "GLD": Reference(386.40, 0.15, (("2024-01-02", 190.10), ("2025-01-02", 242.10))),
    "BTC-USD": Reference(86_600.00, 0.50, (("2024-02-01", 43_150.00), ("2025-01-02", 96_900.00))),
    "ETH-USD": Reference(2_840.00, 0.65, (("2024-02-01", 2_280.00), ("2025-01-02", 3_450.00))),
    "^GSPC": Reference(6_812.00, 0.15, (("2024-01-02", 4_742.80), ("2025-01-02", 5_868.60))),
    "^DJI": Reference(47_290.00, 0.14, (("2024-01-02", 37_715.00), ("2025-01-02", 42_392.00))),
}
