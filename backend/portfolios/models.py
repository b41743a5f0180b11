"""Portfolios, their positions and valuation snapshots.

Cached valuation fields keep full precision (10 places); rounding to cents happens only when
a figure leaves the server (DESIGN "Valuation").
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from backend.market.models import Asset, Quote


class Portfolio(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portfolios")
    name = models.CharField(max_length=100)
    base_currency = models.CharField(max_length=3, default="USD")
    total_value = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    total_cost = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    daily_change = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    daily_change_percent = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    total_return = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    total_return_percent = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    valued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["owner_id", "name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="portfolio_unique_owner_name")]

    def __str__(self) -> str:
        return self.name


class Position(models.Model):
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="positions")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="positions")
    quantity = models.DecimalField(max_digits=28, decimal_places=10)
    average_cost = models.DecimalField(max_digits=20, decimal_places=6)
    # The price used by this position's previous valuation: `significant_change` compares to it.
    last_valued_price = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    # The asset's latest quote joined straight on asset_id (no column: Quote's key is the
    # asset's id), so valuation queries skip the join through market_asset.
    quote = models.ForeignObject(
        Quote,
        on_delete=models.DO_NOTHING,
        from_fields=["asset"],
        to_fields=["asset"],
        null=True,
        related_name="+",
        editable=False,
        serialize=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["portfolio_id", "asset__symbol"]
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "asset"], name="position_unique_portfolio_asset"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="position_quantity_positive"),
            models.CheckConstraint(condition=Q(average_cost__gte=0), name="position_cost_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} {self.asset_id}"


class PortfolioSnapshot(models.Model):
    """A portfolio's valuation at one moment: the points of the value-over-time chart."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="snapshots")
    valued_at = models.DateTimeField()
    total_value = models.DecimalField(max_digits=30, decimal_places=10)
    total_cost = models.DecimalField(max_digits=30, decimal_places=10)
    daily_change = models.DecimalField(max_digits=30, decimal_places=10)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "valued_at"], name="snapshot_unique_portfolio_time")
        ]
        indexes = [models.Index(fields=["portfolio", "-valued_at"], name="snapshot_portfolio_recent")]

    def __str__(self) -> str:
        return f"{self.portfolio_id}@{self.valued_at:%Y-%m-%d %H:%M:%S} {self.total_value}"
