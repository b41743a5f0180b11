from __future__ import annotations

from django.apps import AppConfig


class TasksConfig(AppConfig):
    """`tasks` is an app so that every process (web, worker, beat, commands) connects the
    receivers that turn the services' signals into enqueued tasks, and so that the commands
    that run the pipeline in-process live beside the tasks."""

    name = "tasks"

    def ready(self) -> None:
        from . import history, performance, portfolios, prices  # noqa: F401 - connects their receivers
