from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
GOOD = {
    "SECRET_KEY": "x" * 50,
    "ALLOWED_HOSTS": "tickerflow.example.com",
    "DATABASE_URL": "postgres://u:p@db.example.com:5432/tf",
    "REDIS_URL": "redis://redis.example.com:6379/0",
}


def load_production(**overrides: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {*GOOD, "DEBUG"}}
    env.update(GOOD)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    code = "import django; django.setup(); from django.conf import settings; print(settings.SECURE_SSL_REDIRECT)"
    return subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True)


def test_production_settings_load_with_a_safe_configuration_and_redirect_to_https():
    result = load_production()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"DEBUG": "true"}, "DEBUG must be off"),
        ({"SECRET_KEY": None}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": ""}, "SECRET_KEY must be set"),
        ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS must not contain '*'"),
        ({"ALLOWED_HOSTS": "tickerflow.example.com,*"}, "ALLOWED_HOSTS must not contain '*'"),
        ({"DATABASE_URL": None}, "DATABASE_URL must be set"),
        ({"REDIS_URL": None}, "REDIS_URL must be set"),
    ],
)
def test_production_settings_refuse_unsafe_configuration(override, message):
    result = load_production(**override)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr
