import os
import pkgutil

from celery import Celery

import tasks

# Like manage.py: local development unless told otherwise (the Procfile always says).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("tickerflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Autodiscovery only imports `<app>.tasks`; our tasks live in the top-level `tasks` package.
app.conf.imports = tuple(f"tasks.{m.name}" for m in pkgutil.iter_modules(tasks.__path__))
