"""A portfolio's end-of-day figures in its base currency: the points the returns are
computed from (docs/returns.md).

One row per portfolio per UTC day from its first transaction's day on. `value` is the
holdings at the day's end valued at that day's closes and pair closes; `net_flows` the day's
money in (buys, `fee` transactions) less money out (sells, dividends); `cost`, and the
running `realized_gain`, `dividends` and `fees`, the ledger's figures at the day's end, so a
range's figures are the difference of two rows. Full precision (10 places), like the ledger.
"""

from __future__ import annotations

from django.db import models

from backend.portfolios.models import Portfolio


def _money() -> models.DecimalField:
    return models.DecimalField(max_digits=30, decimal_places=10)


class DailyValue(models.Model):
    id = models.BigAutoField(primary_key=True)
    # Indexed by the unique (portfolio, date) constraint, read by range.
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="daily_values", db_index=False)
    date = models.DateField()
    value = _money()
    net_flows = _money()
    cost = _money()
    realized_gain = _money()
    dividends = _money()
    fees = _money()
    # Positions held that day with no close (or no pair close) yet: left out of `value`.
    unpriced = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["portfolio_id", "date"]
        constraints = [models.UniqueConstraint(fields=["portfolio", "date"], name="dailyvalue_unique_portfolio_date")]

    def __str__(self) -> str:
        return f"{self.portfolio_id}@{self.date:%Y-%m-%d} {self.value}"
