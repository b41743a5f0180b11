from __future__ import annotations

import logging
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest

from .models import Portfolio, PortfolioSnapshot, Position, Transaction
from .services.transactions import (
    FxUnavailable,
    InsufficientQuantity,
    TransactionInput,
    TransactionInvalid,
    assets_prepare,
    transaction_delete,
    transaction_record,
)
from .signals import portfolio_changed

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")


def _cents(value: Decimal | None, suffix: str = "") -> str:
    """Cached figures keep 10 places; the list shows cents (rounded here, at the edge)."""
    if value is None:
        return "-"
    return f"{value.quantize(CENT, rounding=ROUND_HALF_EVEN):,}{suffix}"


class PositionInline(admin.TabularInline):
    """Read-only: positions are derived from the transactions below."""

    model = Position
    extra = 0
    can_delete = False
    fields = ("asset", "quantity", "average_cost", "cost_basis", "realized_gain", "dividends", "last_valued_price")
    readonly_fields = (
        "asset",
        "quantity",
        "average_cost",
        "cost_basis",
        "realized_gain",
        "dividends",
        "last_valued_price",
    )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TransactionInline(admin.TabularInline):
    """The ledger: add or delete transactions (recorded through the ledger services, which
    re-derive the positions); a recorded one is not edited in place."""

    model = Transaction
    extra = 0
    ordering = ["executed_at", "id"]
    autocomplete_fields = ["asset"]
    fields = [
        "type",
        "asset",
        "quantity",
        "price",
        "fee",
        "amount",
        "ratio",
        "currency",
        "fx_rate",
        "executed_at",
        "external_id",
    ]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
    inlines = [TransactionInline, PositionInline]
    readonly_fields_ledger = ["realized_gain", "dividends", "fees"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), *self.readonly_fields_ledger]

    def save_model(self, request: HttpRequest, obj: Portfolio, form: ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        held = set(obj.positions.filter(quantity__gt=0).values_list("asset__symbol", flat=True))
        assets_prepare(portfolio=obj, symbols=held)  # the pairs a changed base currency needs

    def save_formset(self, request: HttpRequest, form: ModelForm, formset: BaseInlineFormSet, change: bool) -> None:
        if formset.model is not Transaction:
            super().save_formset(request, form, formset, change)
            return
        portfolio = form.instance
        new = formset.save(commit=False)
        for row in formset.deleted_objects:
            self._ledger(request, transaction_delete, transaction_row=row)
        for row in new:
            data = TransactionInput(
                type=row.type,
                symbol=row.asset.symbol if row.asset_id else None,
                quantity=row.quantity,
                price=row.price,
                fee=row.fee,
                amount=row.amount,
                ratio=row.ratio,
                currency=row.currency or None,
                fx_rate=row.fx_rate,
                executed_at=row.executed_at,
                external_id=row.external_id or None,
            )
            self._ledger(request, transaction_record, portfolio=portfolio, data=data)

    def _ledger(self, request: HttpRequest, change: Any, **kwargs: Any) -> None:
        try:
            change(**kwargs)
        except (InsufficientQuantity, FxUnavailable, TransactionInvalid) as exc:
            self.message_user(request, f"Transaction refused, nothing changed: {exc}", messages.ERROR)

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
    """Read-only: derived from the transactions (edit those under the portfolio)."""

    list_display = [
        "portfolio",
        "asset",
        "quantity",
        "average_cost",
        "cost_basis",
        "realized_gain",
        "dividends",
        "last_valued_price",
        "updated_at",
    ]
    list_filter = ["asset__asset_type"]
    search_fields = ["portfolio__name", "asset__symbol", "portfolio__owner__username"]
    list_select_related = ["portfolio", "asset"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PortfolioSnapshot)
class PortfolioSnapshotAdmin(admin.ModelAdmin):
    list_display = ["portfolio", "valued_at", "total_value", "total_cost", "daily_change"]
    search_fields = ["portfolio__name"]
    date_hierarchy = "valued_at"
    list_select_related = ["portfolio"]
