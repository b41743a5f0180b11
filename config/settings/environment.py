"""The one reader of the environment every settings module uses."""

from __future__ import annotations

import environ

env = environ.Env()
