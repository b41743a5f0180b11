from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from .models import Asset, PriceHistory, Quote, RefreshRun
from .services.refresh import RefreshDispatch, prices_refresh_force
from .signals import asset_currencies_changed


class QuoteInline(admin.StackedInline):
    model = Quote
    can_delete = False
    extra = 0
    readonly_fields = [f.name for f in Quote._meta.fields]


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = [
        "symbol",
        "name",
        "asset_type",
        "exchange",
        "currency",
        "is_active",
        "tracking_status",
        "price",
        "change_percent",
        "quoted_at",
    ]
    list_filter = ["asset_type", "is_active", "tracking_status", "exchange", "currency", "currency_locked"]
    search_fields = ["symbol", "name"]
    list_select_related = ["quote"]
    readonly_fields = ["unknown_since", "last_error", "created_at", "updated_at"]
    inlines = [QuoteInline]
    list_per_page = 100
    actions = ["force_price_refresh"]
    change_list_template = "admin/market/asset/change_list.html"

    def _report(self, request: HttpRequest, dispatch: RefreshDispatch) -> None:
        ids = ", ".join(dispatch.task_ids) or "none"
        busy = f"; {len(dispatch.in_flight)} already being fetched" if dispatch.in_flight else ""
        self.message_user(
            request,
            format_html(
                'Refresh run {} queued {} symbols in {} tasks ({}){}. Watch them in <a href="{}">Flower</a>.',
                dispatch.run_id,
                len(dispatch.symbols),
                len(dispatch.task_ids),
                ids,
                busy,
                settings.FLOWER_URL,
            ),
            messages.SUCCESS,
        )

    # permissions=["change"] hides the action from users without the change permission; the
    # check inside also refuses a hand-made POST, as the "Refresh all now" button does.
    @admin.action(description="Force price refresh", permissions=["change"])
    def force_price_refresh(self, request: HttpRequest, queryset: QuerySet[Asset]) -> None:
        if not self.has_change_permission(request):
            messages.error(request, "You may not refresh prices.")
            return
        symbols = list(queryset.values_list("symbol", flat=True))
        self._report(request, prices_refresh_force(symbols=symbols))

    def save_model(self, request: HttpRequest, obj: Asset, form: Any, change: bool) -> None:
        # An operator's currency stands: the source's no longer replaces it (docs/protocol.md,
        # "Currencies"); unticking "currency locked" hands it back to the source.
        if "currency" in form.changed_data and "currency_locked" not in form.changed_data:
            obj.currency_locked = True
        super().save_model(request, obj, form, change)
        if change and "currency" in form.changed_data:
            asset_currencies_changed.send(sender=Asset, symbols=[obj.symbol])

    def get_urls(self) -> list[URLPattern]:
        refresh = path(
            "refresh-all/", self.admin_site.admin_view(self.refresh_all_view), name="market_asset_refresh_all"
        )
        return [refresh, *super().get_urls()]

    def refresh_all_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            messages.error(request, "You may not refresh prices.")
        else:
            self._report(request, prices_refresh_force(symbols=None))
        return HttpResponseRedirect(reverse("admin:market_asset_changelist"))

    @admin.display(description="price", ordering="quote__price")
    def price(self, obj: Asset) -> object:
        quote = getattr(obj, "quote", None)
        return quote.price if quote else None

    @admin.display(description="change %", ordering="quote__change_percent")
    def change_percent(self, obj: Asset) -> object:
        quote = getattr(obj, "quote", None)
        return quote.change_percent if quote else None

    @admin.display(description="quoted at", ordering="quote__quoted_at")
    def quoted_at(self, obj: Asset) -> object:
        quote = getattr(obj, "quote", None)
        return quote.quoted_at if quote else None


@admin.register(Quote)
class QuoteAdmin(admin.ModelAdmin):
    list_display = ["asset", "price", "change", "change_percent", "volume", "source", "quoted_at", "fetched_at"]
    list_filter = ["source"]
    search_fields = ["asset__symbol", "asset__name"]
    list_select_related = ["asset"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(PriceHistory)
class PriceHistoryAdmin(admin.ModelAdmin):
    list_display = ["asset", "quoted_at", "price", "volume", "source"]
    list_filter = ["source"]
    search_fields = ["asset__symbol"]
    date_hierarchy = "quoted_at"
    list_select_related = ["asset"]
    show_full_result_count = False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(RefreshRun)
class RefreshRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "started_at",
        "duration",
        "batches_finished",
        "batches_total",
        "symbols_requested",
        "symbols_succeeded",
        "symbols_failed",
    ]
    list_filter = ["kind"]
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in RefreshRun._meta.fields]

    @admin.display(description="duration (s)")
    def duration(self, obj: RefreshRun) -> str:
        seconds = obj.duration_seconds
        return "running" if seconds is None else f"{seconds:.2f}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
