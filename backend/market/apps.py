from django.apps import AppConfig


class MarketConfig(AppConfig):
    name = "backend.market"
    label = "market"
    verbose_name = "Market data"
