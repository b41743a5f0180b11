"""A user's watchlist: symbols they follow without holding them, kept on the server so
the list follows them from one device to the next."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from backend.market.models import Asset


class WatchlistItem(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watchlist_items")
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="watchlist_items")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user_id", "added_at", "id"]
        constraints = [models.UniqueConstraint(fields=["user", "asset"], name="watchlist_unique_user_asset")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.asset_id}"
