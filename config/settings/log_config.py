"""The logging dictConfig: plain lines in development, one JSON object per line in production,
each record carrying its task or connection id and passed through the redaction filter."""

from __future__ import annotations

from typing import Any


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "backend.ops.logging.ContextFilter"},
            "redact": {"()": "backend.ops.logging.RedactFilter"},
        },
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(task_id)s %(connection_id)s] %(message)s"},
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d "
                "%(task_id)s %(task_name)s %(connection_id)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            },
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": log_format, "filters": ["context", "redact"]}
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": {"level": "INFO"}},
    }
