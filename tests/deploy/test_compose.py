"""docker-compose.yml runs every process type of the Procfile plus `stream`, and `docker
compose config` accepts it when the docker CLI (with its compose plugin) is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

BASE_DIR = Path(__file__).resolve().parents[2]


def procfile_types() -> set[str]:
    lines = (BASE_DIR / "Procfile").read_text().splitlines()
    return {line.split(":", 1)[0] for line in lines if line.strip() and not line.startswith("#")}


def test_compose_has_a_service_for_every_process_type_and_stream():
    services = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())["services"]
    # `release` is the one-off `migrate` service there.
    wanted = (procfile_types() - {"release"}) | {"stream", "migrate"}
    assert wanted <= set(services)
    stream = services["stream"]
    assert stream["command"] == ["python", "manage.py", "run_stream"]
    assert stream["environment"]["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
    assert stream["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert stream["restart"] == "unless-stopped"


def test_docker_compose_config_accepts_the_file():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker CLI is not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"the docker CLI has no compose plugin: {probe.stderr.strip()[:200]}")
    env = {**os.environ, "SECRET_KEY": "compose-check", "FLOWER_BASIC_AUTH": "ops:compose-check"}
    result = subprocess.run(
        [docker, "compose", "-f", str(BASE_DIR / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=BASE_DIR,
        env=env,
    )
    assert result.returncode == 0, result.stderr
