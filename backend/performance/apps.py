from django.apps import AppConfig


class PerformanceConfig(AppConfig):
    name = "backend.performance"
    label = "performance"
