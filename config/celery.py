import os
import pkgutil
import time
from typing import Any

from celery import Celery
from celery.signals import before_task_publish, task_postrun, task_prerun, worker_init, worker_process_init

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


# Celery 5.7's Django fixup closes every database connection before and after each task
# (celery#4116, its fix reverted in celery#9824) unless CELERY_DB_REUSE_MAX is set: a new
# PostgreSQL connection per task, a tenth of a fetch batch's CPU. Settings set that knob out of
# reach, and tasks get the connection life of a Django request instead: close_old_connections()
# before and after each task drops connections past CONN_MAX_AGE or broken by an error (a
# database restart), and arms CONN_HEALTH_CHECKS for the next use.
@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(task: Any = None, **_: Any) -> None:
    from django.db import close_old_connections, connection

    if getattr(getattr(task, "request", None), "is_eager", False) or connection.in_atomic_block:
        return
    close_old_connections()


# Freeze the startup heap out of every collection (config/gc_policy.py): in the worker's main
# process (the solo pool runs tasks there) and again in each pool process after the fork.
@worker_init.connect
@worker_process_init.connect
def gc_tune_worker_process(**_: Any) -> None:
    from django.conf import settings

    from config.gc_policy import gc_tune_process

    gc_tune_process(settings.WORKER_GC_THRESHOLDS)
