"""The PostgreSQL revaluation pass of one share of portfolios as ONE statement.

Convert each asset's latest quote into each base currency of the share once (a join on the
pairs' quotes, market/currency.py's rules), aggregate the open positions per portfolio and
base in ONE pass over them (no join to the portfolios per position), lock the share's rows in
id order and keep each portfolio's own base, derive the figures in NUMERIC with the ledger
figures, UPDATE only the portfolios whose figures or valued prices changed, record
the pass's prices once (a valuation epoch: pairs included), mark newly valued positions,
insert the snapshots, and RETURN what was stored and the moved positions of the portfolios
someone hears about.

Exactness (valuation.figures_derive's figures, stored at the model's 10 places, to the last
digit):
- Every product and sum is exact NUMERIC. The aggregation sums ONE product per position,
  `quantity * (price * fx * 10^100 + previous_close * fx_previous * 10^50) + cost`, instead
  of three: the three sums come apart exactly afterwards. A rate has at most 8 decimals (a
  pair's 6, times 0.01 for a minor unit), so the value and the previous value have at most
  24 decimals (10 of quantity + 6 of a price + 8) and the cost at most 16; each stays under
  10^25 in size (a stored figure is under 10^20). So `value * 10^100` is a multiple of 10^76
  and the rest is smaller than 10^76 / 2: round(sum, -76) is exactly `value * 10^100`;
  likewise round(rest, -26) is `previous * 10^50`. Signs do not matter (rounding, not
  truncation).
- Ratios are divided at 60 decimal places, then rounded half-even to the stored 10 with
  tf_round_half_even (migration 0004; PostgreSQL's round() goes half away from zero). A
  ratio of two such sums that is not exactly a tie lies at least 10^-57 away from one, so
  both this and Python's 80-digit Decimal division round to the same 10 places.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from backend.portfolios.sql import bigint_array

from .spans import Share, Span
from .sql_text import STATEMENT

# The model's storage precision (DecimalField decimal_places=10).
PLACES = 10

# Which portfolios a share is: the ones of a list (that exist), or every portfolio with
# positions in an id span (a Span: the aggregation finds them, no list is sent or hashed into).
_LISTED = {
    "position_members": "AND pos.portfolio_id = ANY(%(ids)s::bigint[])",
    "portfolio_members": "AND id = ANY(%(ids)s::bigint[])",
    "base_members": "AND id = ANY(%(ids)s::bigint[])",
}
_SPANNED = {
    "position_members": "",
    "portfolio_members": "AND id IN (SELECT portfolio_id FROM sums)",
    "base_members": "",  # every portfolio of the span (at worst one base too many)
}


def share_statement(
    share: Share, *, now: datetime, heard: Collection[int] | None, listened: Collection[int] | None
) -> tuple[str, dict[str, Any]]:
    """The pass's SQL and parameters (the bench EXPLAINs them). `heard`: portfolios whose
    stored rows to return, `listened` (among them): with their figures; None: all."""
    spanned = isinstance(share, Span)
    ids = share.ids if isinstance(share, Span) else share
    params = {
        "ids": "{}" if spanned else bigint_array(ids),
        "low": share.low if isinstance(share, Span) else min(ids, default=0),
        "high": share.high if isinstance(share, Span) else max(ids, default=0),
        "now": now,
        "places": PLACES,
        "everyone": heard is None,
        "heard": bigint_array(sorted(heard or ())),
        "listened": bigint_array(sorted(listened or ())),
    }
    sql = STATEMENT
    for name, text in (_SPANNED if spanned else _LISTED).items():
        sql = sql.replace("{" + name + "}", text)
    return sql, params
