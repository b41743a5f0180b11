"""Daily values in the admin: read-only (they are derived from the ledger and the closes)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import DailyValue


@admin.register(DailyValue)
class DailyValueAdmin(admin.ModelAdmin):
    list_display = ("portfolio", "date", "value", "net_flows", "cost", "unpriced")
    list_filter = ("date",)
    raw_id_fields = ("portfolio",)
    date_hierarchy = "date"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
