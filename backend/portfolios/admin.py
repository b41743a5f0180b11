from __future__ import annotations

import logging
from decimal import ROUND_HALF_EVEN, Decimal

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from .models import Portfolio, PortfolioSnapshot, Position
from .signals import portfolio_changed

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")


def _cents(value: Decimal | None, suffix: str = "") -> str:
    """Cached figures keep 10 places; the list shows cents (rounded here, at the edge)."""
    if value is None:
        return "-"
    return f"{value.quantize(CENT, rounding=ROUND_HALF_EVEN):,}{suffix}"


class PositionInline(admin.TabularInline):
    model = Position
    extra = 1
    autocomplete_fields = ["asset"]
    fields = ["asset", "quantity", "average_cost", "last_valued_price"]
    readonly_fields = ["last_valued_price"]  # Position.last_valued_price: from the valuation epoch


@admin.register(Portfolio)
class PortfolioAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "owner",
        "base_currency",
        "position_count",
        "value",
        "change",
        "return_",
        "return_percent",
        "valued_at",
    ]
    actions = ["recalculate_now"]
    list_filter = ["base_currency", "valued_at"]
    search_fields = ["name", "owner__username", "positions__asset__symbol"]
    list_select_related = ["owner"]
    autocomplete_fields = ["owner"]
    readonly_fields = [
        "total_value",
        "total_cost",
        "daily_change",
        "daily_change_percent",
        "total_return",
        "total_return_percent",
        "valued_at",
        "created_at",
        "updated_at",
    ]
    inlines = [PositionInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Portfolio]:
        return super().get_queryset(request).annotate(_position_count=Count("positions", distinct=True))

    @admin.display(description="positions", ordering="_position_count")
    def position_count(self, obj: Portfolio) -> int:
        return int(getattr(obj, "_position_count", 0))

    @admin.display(description="total value", ordering="total_value")
    def value(self, obj: Portfolio) -> str:
        return _cents(obj.total_value)

    @admin.display(description="daily change", ordering="daily_change")
    def change(self, obj: Portfolio) -> str:
        return f"{_cents(obj.daily_change)} ({_cents(obj.daily_change_percent, ' %')})"

    @admin.display(description="total return", ordering="total_return")
    def return_(self, obj: Portfolio) -> str:
        return _cents(obj.total_return)

    @admin.display(description="return %", ordering="total_return_percent")
    def return_percent(self, obj: Portfolio) -> str:
        return _cents(obj.total_return_percent, " %")

    @admin.action(description="Recalculate now")
    def recalculate_now(self, request: HttpRequest, queryset: QuerySet[Portfolio]) -> None:
        # The same path as a position change: a revaluation task per portfolio, which stores
        # the figures and publishes what changed (docs/architecture.md, "Who enqueues what").
        ids = list(queryset.values_list("pk", flat=True))
        for portfolio_id in ids:
            portfolio_changed.send(sender=Portfolio, portfolio_id=portfolio_id)
        self.message_user(
            request,
            f"Revaluation of {len(ids)} portfolio(s) queued: subscribers get what changed.",
            messages.SUCCESS,
        )


@admin.register(Position)
class PositionAdmin(admin.ModelAdmin):
    list_display = ["portfolio", "asset", "quantity", "average_cost", "last_valued_price", "updated_at"]
    list_filter = ["asset__asset_type"]
    search_fields = ["portfolio__name", "asset__symbol", "portfolio__owner__username"]
    list_select_related = ["portfolio", "asset"]
    autocomplete_fields = ["portfolio", "asset"]


@admin.register(PortfolioSnapshot)
class PortfolioSnapshotAdmin(admin.ModelAdmin):
    list_display = ["portfolio", "valued_at", "total_value", "total_cost", "daily_change"]
    search_fields = ["portfolio__name"]
    date_hierarchy = "valued_at"
    list_select_related = ["portfolio"]
