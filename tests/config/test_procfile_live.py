"""Each Procfile line runs as written, with only environment variables (production settings)."""

from __future__ import annotations

import base64
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from config.celery import app
from tests.live import LiveProcess, free_port, process_env, wait_for_port

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
BASE_DIR = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    lines = (BASE_DIR / "Procfile").read_text().splitlines()
    return {name.strip(): cmd.strip() for name, _, cmd in (line.partition(":") for line in lines if line.strip())}


def production_env(**extra: str) -> dict[str, str]:
    settings = {
        "SECRET_KEY": "procfile-test-" + "x" * 40,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "FLOWER_BASIC_AUTH": "ops:procfile-pass",
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
    }
    env = process_env(**{**settings, **extra})
    env.pop("DJANGO_SETTINGS_MODULE")  # the Procfile line chooses production itself
    env.pop("DEBUG", None)
    return env


def start(name: str, **extra: str) -> LiveProcess:
    return LiveProcess(f"procfile-{name}", ["bash", "-c", procfile()[name]], production_env(**extra))


def status_of(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_release_migrates():
    proc = start("release")
    assert proc.proc.wait(timeout=120) == 0, proc.log()
    proc.stop()


def test_web_answers_on_port():
    # The platform's build step (Heroku's buildpack, the Dockerfile) collects static files.
    build = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=BASE_DIR, env={**production_env(), "DJANGO_SETTINGS_MODULE": "config.settings.production"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    port = free_port()
    proc = start("web", PORT=str(port))
    try:
        wait_for_port(port)
        assert status_of(f"http://127.0.0.1:{port}/api/health/") in {200, 503}
        assert status_of(f"http://127.0.0.1:{port}/accounts/login/") == 200
    finally:
        proc.stop()


def test_worker_answers_a_ping():
    proc = start("worker")
    try:
        proc.wait_for_log("ready.", timeout=60)
        replies = app.control.ping(timeout=5)
        assert replies, proc.log()[-2000:]
    finally:
        proc.stop()


def test_beat_starts_with_the_database_scheduler_and_ticks():
    proc = start("beat")
    try:
        proc.wait_for_log("beat: Starting...", timeout=60)
        proc.wait_for_log("Sending due task", timeout=60)
        assert "DatabaseScheduler" in proc.log()
    finally:
        proc.stop()


def test_flower_requires_basic_auth():
    port = free_port()
    proc = start("flower", FLOWER_PORT=str(port))
    try:
        wait_for_port(port, timeout=60)
        assert status_of(f"http://127.0.0.1:{port}/") == 401
        assert status_of(f"http://127.0.0.1:{port}/", auth="ops:procfile-pass") == 200
    finally:
        proc.stop()


def test_flower_refuses_to_start_without_credentials():
    proc = start("flower", FLOWER_BASIC_AUTH="")
    assert proc.proc.wait(timeout=60) != 0
    assert "FLOWER_BASIC_AUTH must be set" in proc.log()
    proc.stop()
