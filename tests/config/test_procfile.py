from __future__ import annotations

import shlex
from pathlib import Path

from config.stack import procfile_for_run

BASE_DIR = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    lines = (BASE_DIR / "Procfile").read_text().splitlines()
    return {name.strip(): cmd.strip() for name, _, cmd in (line.partition(":") for line in lines if line.strip())}


def test_procfile_declares_every_process_type_with_production_settings_by_default():
    entries = procfile()
    assert set(entries) == {"release", "web", "worker", "beat", "flower", "stream"}
    for command in entries.values():
        assert command.startswith("DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-config.settings.production} ")
        shlex.split(command)  # parses as a shell line
    assert "--port $PORT" in entries["web"]
    assert "django_celery_beat.schedulers:DatabaseScheduler" in entries["beat"]


def test_make_run_procfile_drops_release_and_keeps_worker_and_beat_alive():
    run = procfile_for_run((BASE_DIR / "Procfile").read_text(), stream=False)
    names = [line.partition(":")[0] for line in run.splitlines()]
    assert names == ["web", "worker", "beat", "flower"]
    streaming = procfile_for_run((BASE_DIR / "Procfile").read_text(), stream=True)
    assert [line.partition(":")[0] for line in streaming.splitlines()] == [*names, "stream"]
    for line in run.splitlines():
        if line.startswith(("worker:", "beat:")):
            assert "-m config.respawn celery --app config" in line
