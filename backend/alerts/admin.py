from __future__ import annotations

from django.contrib import admin

from .models import Alert, AlertEvent


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "asset", "condition", "threshold", "repeat", "active", "armed", "created_at"]
    list_filter = ["active", "armed", "condition", "repeat"]
    search_fields = ["asset__symbol", "owner__username"]
    raw_id_fields = ["owner"]
    autocomplete_fields = ["asset"]
    readonly_fields = ["state_at", "created_at"]
    list_select_related = ["owner", "asset"]


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    list_display = ["id", "alert", "owner", "condition", "threshold", "price", "quoted_at", "triggered_at", "read_at"]
    list_filter = ["read_at", "condition"]
    search_fields = ["alert__asset__symbol", "owner__username"]
    raw_id_fields = ["alert", "owner"]
    readonly_fields = ["emailed_at"]
    date_hierarchy = "triggered_at"
    list_select_related = ["owner", "alert__asset"]
