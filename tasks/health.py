"""Tasks that prove a worker is alive and wired to the broker, the backend and the database."""

from __future__ import annotations

from celery import shared_task
from django.db import connection


@shared_task(name="tasks.health.worker_check", acks_late=False, soft_time_limit=5, time_limit=10)
def worker_check(token: str) -> dict[str, object]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        (db_ok,) = cursor.fetchone()
    return {"token": token, "database": db_ok == 1}
