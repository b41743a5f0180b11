from django.apps import AppConfig


class PortfoliosConfig(AppConfig):
    name = "backend.portfolios"
    label = "portfolios"
