import os
import pkgutil
import time
from typing import Any

from celery import Celery
from celery.signals import before_task_publish

import tasks

# Like manage.py: local development unless told otherwise (the Procfile always says).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("tickerflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Autodiscovery only imports `<app>.tasks`; our tasks live in the top-level `tasks` package.
app.conf.imports = tuple(f"tasks.{m.name}" for m in pkgutil.iter_modules(tasks.__path__))

# The send time of a beat tick, so workers tell two beats' sends apart by when they were sent,
# not by when a (possibly lagging) worker got to them (backend/market/services/claims.py).
BEAT_SENT_AT_HEADER = "tf_beat_sent_at"


@before_task_publish.connect
def stamp_beat_send_time(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None and headers.get("periodic_task_name"):
        headers.setdefault(BEAT_SENT_AT_HEADER, time.time())
