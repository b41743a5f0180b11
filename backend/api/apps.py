from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "backend.api"
    label = "api"

    def ready(self) -> None:
        # Connects the login throttle's `user_login_failed` receiver.
        from . import logins  # noqa: F401
