"""`make run`: the whole stack on one machine (web: WEB_CONCURRENCY Daphne processes, worker,
beat, Flower, and the stream process when MARKET_STREAM_SOURCE is set) through honcho, with
the embedded Redis when REDIS_URL is unset and SQLite when DATABASE_URL is unset."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from config.embedded import VAR_DIR, ensure_redis_url

BASE_DIR = Path(__file__).resolve().parent.parent
RESPAWNED = {"worker", "beat"}
ENV_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def procfile_for_run(procfile: str, *, stream: bool | None = None) -> str:
    """The Procfile's process lines minus `release`, with worker and beat kept alive, and
    `stream` only when streaming is on (`stream`, else MARKET_STREAM_SOURCE is set)."""
    if stream is None:
        stream = bool(os.environ.get("MARKET_STREAM_SOURCE"))
    skipped = {"release", ""} if stream else {"release", "", "stream"}
    lines = []
    for line in procfile.splitlines():
        name, sep, command = line.partition(":")
        if not sep or name.strip() in skipped or line.lstrip().startswith("#"):
            continue
        name, command = name.strip(), command.strip()
        if name in RESPAWNED:
            # Leading VAR=value words stay outside: respawn runs the rest without a shell.
            words = command.split(" ")
            n_env = next(i for i, word in enumerate(words) if not ENV_WORD.match(word))
            command = " ".join([*words[:n_env], sys.executable, "-m", "config.respawn", *words[n_env:]])
        lines.append(f"{name}: {command}")
    return "\n".join(lines) + "\n"


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # SIGTERM (a process manager, `timeout`) stops the stack as Ctrl-C does, so the embedded
    # Redis is stopped at exit rather than left behind.
    signal.signal(signal.SIGTERM, _interrupt)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    os.environ.setdefault("PORT", "8000")
    os.environ.setdefault("FLOWER_PORT", "5555")
    os.environ.setdefault("FLOWER_BASIC_AUTH", "admin:admin")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    # Ctrl-C should not wait out the production soft-shutdown window (honcho kills at 10 s).
    os.environ.setdefault("CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", "3")
    # The Procfile's `daphne`, `celery` and `python` must be this virtualenv's.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    redis_url = ensure_redis_url()  # started here, it lives exactly as long as this process
    manage = [sys.executable, str(BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], check=True)
    subprocess.run([*manage, "seed_demo"], check=True)

    VAR_DIR.mkdir(exist_ok=True)
    run_procfile = VAR_DIR / "Procfile.run"
    run_procfile.write_text(procfile_for_run((BASE_DIR / "Procfile").read_text()))
    port, flower_port = os.environ["PORT"], os.environ["FLOWER_PORT"]
    web = os.environ.setdefault("WEB_CONCURRENCY", "1")  # the Procfile's `web` line (config/web.py) reads it
    user, _, password = os.environ["FLOWER_BASIC_AUTH"].partition(":")
    print(
        f"""
Tickerflow is starting ({os.environ["DJANGO_SETTINGS_MODULE"]}, Redis {redis_url})
  dashboard  http://127.0.0.1:{port}/          login demo / demo
  admin      http://127.0.0.1:{port}/admin/    login admin / admin
  flower     http://127.0.0.1:{flower_port}/   login {user} / {password}
  websocket  ws://127.0.0.1:{port}/ws/realtime/   ({web} web process(es): WEB_CONCURRENCY)
Ctrl-C stops every process.
""",
        flush=True,
    )
    honcho = Path(sys.executable).with_name("honcho")
    proc = subprocess.Popen([str(honcho), "--procfile", str(run_procfile), "--app-root", str(BASE_DIR), "start"])
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reaches honcho too; a SIGTERM only us: pass it on either way.
        # Honcho stops its processes; then the embedded Redis (ours) stops at exit.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
