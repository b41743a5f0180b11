"""Process plumbing for the fan-out benchmark: the environment each process gets, the scratch
database, Redis clean-up between runs, ports, and CPU / memory readings from /proc."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.fanout.designs import DESIGNS

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR = BASE_DIR / "var" / "bench"
SETTINGS = "config.settings.test"


def bench_env(db: Path, layer: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=SETTINGS,
        # BENCH_DATABASE_URL: a database of your own (PostgreSQL, as deployed); else scratch SQLite.
        DATABASE_URL=os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{db}",
        CHANNEL_LAYER_BACKEND=layer,
        WEBSOCKET_MAX_CONNECTIONS_PER_USER="1000000",
        CHANNEL_LAYER_MAX_CONNECTIONS="20000",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def prepare_database(db: Path, symbols: list[str]) -> str:
    VAR.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    env = bench_env(db, DESIGNS["hub-core"][1])
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
    script = (
        "from django.contrib.auth.models import User\n"
        "from rest_framework.authtoken.models import Token\n"
        "from backend.market.models import Asset\n"
        "u = User.objects.create_user('bench')\n"
        f"Asset.objects.bulk_create([Asset(symbol=s, tracking_status='tracked') for s in {symbols!r}])\n"
        "print(Token.objects.create(user=u).key)\n"
    )
    return manage_shell(script, env)


def manage_shell(script: str, env: dict[str, str]) -> str:
    """Run `script` in `manage.py shell` with `env`; the last line it printed."""
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=BASE_DIR,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def stop_server(server: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it is still there after `timeout` seconds."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def clean_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for pattern in ("tf-asgi*", "asgi*", "tf:ws:*"):
        keys = list(client.scan_iter(pattern, count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    client.close()


def warm_up(port: int, token: str) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /ws/realtime/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Authorization: Token {token}\r\n\r\n"
            ).encode()
        )
        data = b""
        while data.count(b"connection") < 1:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def server_pids(pid: int, processes: int, timeout: float = 60) -> list[int]:
    """The Daphne processes serving: `pid` itself, or the web runner's `processes` children."""
    if processes <= 1:
        return [pid]
    deadline = time.monotonic() + timeout
    while True:
        found = sorted(
            int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()
        )
        if len(found) >= processes or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def raise_fd_limit() -> int:
    """Soft open-files limit up to the hard one: thousands of sockets in the server and the
    load generators (children inherit it). Returns the limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
