"""Real processes for live tests: Daphne and Celery workers against the test database and
the real Redis. Each process gets the test database's URL, so it sees committed test data
(use `django_db(transaction=True)`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent
LOG_DIR = BASE_DIR / "var" / "test-logs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=test_database_url(),
        REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class LiveProcess:
    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOG_DIR / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            argv, cwd=BASE_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no {needle!r} within {timeout} s:\n{self.log()[-4000:]}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


@contextmanager
def daphne(**env: str) -> Iterator[tuple[LiveProcess, int]]:
    port = free_port()
    argv = [sys.executable, "-m", "daphne", "--bind", "127.0.0.1", "--port", str(port), "config.asgi:application"]
    proc = LiveProcess("daphne", argv, process_env(**env))
    try:
        wait_for_port(port)
        yield proc, port
    finally:
        proc.stop()


@contextmanager
def celery_worker(
    name: str = "w1", concurrency: int = 2, *, respawned: bool = False, **env: str
) -> Iterator[LiveProcess]:
    """A real worker on the test database and Redis. What it leaves queued survives its stop
    (a second worker of the same test picks up a requeued or redelivered task); the suite's
    autouse fixture forgets it after the test. `respawned`: under config/respawn.py, as
    `make run` runs it (the process manager's part on Heroku or compose)."""
    supervisor = [sys.executable, "-m", "config.respawn"] if respawned else []
    argv = [*supervisor,
        sys.executable, "-m", "celery", "--app", "config", "worker", "--loglevel", "INFO",
        "--hostname", f"{name}-{os.getpid()}@%h", "--concurrency", str(concurrency),
        "--without-gossip", "--without-mingle", "--pool", "prefork",
    ]  # fmt: skip
    proc = LiveProcess(f"worker-{name}", argv, process_env(**env))
    try:
        proc.wait_for_log("ready.", timeout=60)
        yield proc
    finally:
        proc.stop()


def forget_queued_tasks() -> None:
    """Drop what a test left queued (a chained recalculation, a retry countdown) so it never
    runs in the next test's worker, and the registry entries of the Daphne processes it
    stopped (their heartbeats would otherwise count them as live for WEBSOCKET_NODE_TTL)."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for key in client.scan_iter(match="celery*"):
            client.delete(key)
        client.delete("unacked", "unacked_index", "unacked_mutex")
        for pattern in ("tf:recalc:*", "tf:ws:*"):
            for key in client.scan_iter(match=pattern):
                client.delete(key)
    finally:
        client.close()
