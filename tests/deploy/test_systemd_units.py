"""deploy/systemd: one unit per process type, each hardened the same way, and accepted by
`systemd-analyze verify` (when installed) with the install paths pointed at this checkout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
UNITS = BASE_DIR / "deploy" / "systemd"
INSTALL_DIR = "/opt/tickerflow"
ENV_FILE = "/etc/tickerflow/tickerflow.env"

COMMANDS = {
    "web": "/.venv/bin/python -m config.web --bind 127.0.0.1 --port ${PORT} --proxy-headers config.asgi:application",
    "worker": "/.venv/bin/celery --app config worker",
    "beat": "/.venv/bin/celery --app config beat --loglevel INFO --scheduler "
    "django_celery_beat.schedulers:DatabaseScheduler",
    "flower": "/.venv/bin/python -m config.flower",
    "stream": "/.venv/bin/python manage.py run_stream",
}


def directives(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.mark.parametrize("process", sorted(COMMANDS))
def test_each_process_has_a_hardened_unit_that_restarts_as_its_own_user(process):
    unit = directives(UNITS / f"tickerflow-{process}.service")
    assert unit["EnvironmentFile"] == [ENV_FILE]
    assert unit["Restart"] == ["always"]
    assert unit["User"] == ["tickerflow"]
    assert unit["Group"] == ["tickerflow"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["PrivateTmp"] == ["yes"]
    assert unit["ProtectHome"] == ["yes"]
    assert unit["WorkingDirectory"] == [INSTALL_DIR]
    assert "DJANGO_SETTINGS_MODULE=config.settings.production" in unit["Environment"]
    assert unit["ExecStart"][0].startswith(INSTALL_DIR + COMMANDS[process]), unit["ExecStart"]
    assert unit["WantedBy"] == ["tickerflow.target"]
    assert unit["PartOf"] == ["tickerflow.target"]


def test_the_worker_shuts_down_softly_and_web_and_flower_listen_on_loopback_only():
    worker = directives(UNITS / "tickerflow-worker.service")
    assert "REMAP_SIGTERM=SIGQUIT" in worker["Environment"]
    assert worker["KillMode"] == ["mixed"]
    assert "--bind 127.0.0.1" in directives(UNITS / "tickerflow-web.service")["ExecStart"][0]
    assert "FLOWER_ADDRESS=127.0.0.1" in " ".join(directives(UNITS / "tickerflow-flower.service")["Environment"])


def test_the_target_starts_every_process():
    target = directives(UNITS / "tickerflow.target")
    assert set(target["Wants"][0].split()) == {f"tickerflow-{p}.service" for p in COMMANDS}


def test_the_example_environment_file_names_every_required_setting():
    text = (UNITS / "tickerflow.env.example").read_text()
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "FLOWER_BASIC_AUTH"):
        assert f"\n{name}=" in text, name


def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package `systemd`)")
    if not (BASE_DIR / ".venv" / "bin" / "daphne").exists():
        pytest.skip("verify checks that every ExecStart exists: needs this checkout's .venv")
    env_file = tmp_path / "tickerflow.env"
    env_file.write_text("SECRET_KEY=x\n")
    names = []
    for unit in sorted([*UNITS.glob("*.service"), *UNITS.glob("*.target")]):
        text = unit.read_text().replace(ENV_FILE, str(env_file)).replace(INSTALL_DIR, str(BASE_DIR))
        (tmp_path / unit.name).write_text(text)
        names.append(str(tmp_path / unit.name))
    result = subprocess.run(
        [analyze, "verify", "--man=no", *names], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    # Unknown keys and bad values are only warnings (exit status 0): any output is a failure.
    assert result.returncode == 0, result.stderr
    assert (result.stdout + result.stderr).strip() == ""
