"""Assets, their latest quote, price history and the record of each refresh run.

Prices are Decimal with 6 places; PostgreSQL stores them exactly. SQLite (the demo default)
keeps about 15 significant digits, which covers every real quote.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models
from django.db.models import Q

from .currency import DEFAULT_CURRENCY, currency_for_symbol


def _currency_settle(asset: Asset) -> None:
    """A new asset left at the default currency takes its exchange suffix's (`.L` GBp, ...):
    the source's `currency` or the admin correct it later (backend/market/currency.py)."""
    if asset._state.adding and asset.currency == DEFAULT_CURRENCY and asset.symbol:
        asset.currency = currency_for_symbol(asset.symbol)


class AssetManager(models.Manager["Asset"]):
    def bulk_create(self, objs: Iterable[Asset], *args: Any, **kwargs: Any) -> list[Asset]:
        objs = list(objs)
        for asset in objs:
            _currency_settle(asset)
        return super().bulk_create(objs, *args, **kwargs)


class Asset(models.Model):
    class AssetType(models.TextChoices):
        STOCK = "stock", "Stock"
        ETF = "etf", "ETF"
        CRYPTO = "crypto", "Crypto"
        INDEX = "index", "Index"
        FUND = "fund", "Fund"
        OTHER = "other", "Other"

    class TrackingStatus(models.TextChoices):
        TRACKED = "tracked", "Tracked"
        PENDING = "pending", "Pending first quote"
        UNKNOWN = "unknown", "Unknown to every source"
        FAILING = "failing", "Failing"

    symbol = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=200, blank=True)
    asset_type = models.CharField(max_length=10, choices=AssetType.choices, default=AssetType.STOCK)
    # Trading currency: ISO 4217 or a minor unit (GBp, GBX, ZAc, ILA); see backend/market/currency.py.
    currency = models.CharField(max_length=3, default=DEFAULT_CURRENCY)
    # Set when an operator edits the currency in the admin: the source's currency no longer
    # replaces it (backend/market/services/ingest.py); clear it to follow the source again.
    currency_locked = models.BooleanField(
        default=False,
        db_default=False,  # rows inserted by SQL (the benchmarks' fills) need no value
        help_text="Corrected by an operator: the market data source's currency does not replace it.",
    )
    exchange = models.CharField(max_length=32, blank=True)
    is_active = models.BooleanField(default=True)
    tracking_status = models.CharField(max_length=10, choices=TrackingStatus.choices, default=TrackingStatus.PENDING)
    unknown_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AssetManager()

    class Meta:
        ordering = ["symbol"]
        constraints = [
            models.CheckConstraint(condition=Q(symbol__regex=r"^[A-Z0-9.\-^=/]{1,20}$"), name="asset_symbol_format")
        ]

    def __str__(self) -> str:
        return self.symbol

    def save(self, *args: Any, **kwargs: Any) -> None:
        _currency_settle(self)
        super().save(*args, **kwargs)


class Quote(models.Model):
    """The latest quote of one asset (one row per asset, upserted by each fetch)."""

    asset = models.OneToOneField(Asset, on_delete=models.CASCADE, primary_key=True, related_name="quote")
    price = models.DecimalField(max_digits=20, decimal_places=6)
    previous_close = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    change = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    change_percent = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    volume = models.BigIntegerField(null=True, blank=True)
    high = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    low = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    market_cap = models.BigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=32)
    quoted_at = models.DateTimeField(help_text="When the market priced it (source time).")
    fetched_at = models.DateTimeField(help_text="When we received it.")

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(price__gt=0), name="quote_price_positive")]

    def __str__(self) -> str:
        return f"{self.asset_id} {self.price}"


class PriceHistory(models.Model):
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="history")
    quoted_at = models.DateTimeField()
    price = models.DecimalField(max_digits=20, decimal_places=6)
    volume = models.BigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=32)

    class Meta:
        verbose_name_plural = "price history"
        constraints = [
            models.UniqueConstraint(fields=["asset", "quoted_at"], name="history_unique_asset_time"),
            models.CheckConstraint(condition=Q(price__gt=0), name="history_price_positive"),
        ]
        indexes = [models.Index(fields=["asset", "-quoted_at"], name="history_asset_recent")]

    def __str__(self) -> str:
        return f"{self.asset_id}@{self.quoted_at:%Y-%m-%d %H:%M:%S} {self.price}"


class RefreshRun(models.Model):
    """One refresh cycle (scheduled or forced) and what came of it."""

    class Kind(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        FORCED = "forced", "Forced"

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.SCHEDULED)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    batches_total = models.PositiveIntegerField(default=0)
    batches_finished = models.PositiveIntegerField(default=0)
    symbols_requested = models.PositiveIntegerField(default=0)
    symbols_succeeded = models.PositiveIntegerField(default=0)
    symbols_failed = models.PositiveIntegerField(default=0)
    source_counts = models.JSONField(default=dict, blank=True, help_text="quotes per source")
    errors = models.JSONField(default=dict, blank=True, help_text="symbol -> last error")
    # Which batch attempts were already counted, so a redelivered batch is not counted twice.
    applied_attempts = models.JSONField(default=list, blank=True, editable=False)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["-started_at"], name="refreshrun_recent")]

    def __str__(self) -> str:
        return f"{self.kind} run {self.pk} at {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
