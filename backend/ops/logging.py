"""Log records carry the task and connection they belong to, and never a secret.

`ContextFilter` adds `task_id`, `task_name` (from Celery's current task) and `connection_id`
(set by the WebSocket consumer in `connection_id_var`). `RedactFilter` scrubs tokens,
cookies, passwords and keys from the message and its arguments before any handler sees it.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar

connection_id_var: ContextVar[str | None] = ContextVar("connection_id", default=None)

REDACTED = "[redacted]"
_SECRET_PATTERNS = [
    # Authorization: Token abc / Bearer abc
    re.compile(r"(?i)\b(token|bearer|basic)\s+[A-Za-z0-9._~+/=\-:]{8,}"),
    # key=value pairs in URLs, headers, forms and reprs
    re.compile(
        r"(?i)\b(password|passwd|secret|token|apikey|api_key|crumb|sessionid|csrftoken|csrfmiddlewaretoken|cookie)"
        r"(['\"]?\s*[:=]\s*['\"]?)([^\s&'\",;}]+)"
    ),
    # credentials inside URLs: scheme://user:password@host
    re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^:/@\s]*:)([^@\s/]+)(@)"),
]


def redact(text: str) -> str:
    text = _SECRET_PATTERNS[0].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _SECRET_PATTERNS[2].sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(3)}", text)


class RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = str(record.msg)
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "task_id"):
            task_id = task_name = None
            try:
                from celery import current_task

                if current_task and current_task.request and current_task.request.id:
                    task_id, task_name = current_task.request.id, current_task.name
            except Exception:  # noqa: S110 - outside Celery there is simply no task
                pass
            record.task_id, record.task_name = task_id, task_name
        if not hasattr(record, "connection_id"):
            record.connection_id = connection_id_var.get()
        return True
