"""The soak's processes: the Procfile's web, worker and beat lines run as written (production
settings from the environment only), a Redis server of the soak's own, and a supervisor that
restarts whatever dies after a platform-like delay, as Heroku or systemd would."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.fanout.processes import proc_rss_kb
from config.embedded import start_redis, stop_redis

BASE_DIR = Path(__file__).resolve().parent.parent.parent
ROLES = ("web", "worker", "beat")


def procfile_lines() -> dict[str, str]:
    lines = (BASE_DIR / "Procfile").read_text().splitlines()
    parsed = (line.partition(":") for line in lines if line.strip() and not line.lstrip().startswith("#"))
    return {name.strip(): command.strip() for name, _, command in parsed}


def soak_env(*, database_url: str, redis_url: str, port: int, interval: int) -> dict[str, str]:
    """What a platform would set: production settings (the Procfile's default), the soak's
    own database and Redis, the simulated source at `interval` seconds."""
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the Procfile line chooses production itself
    env.pop("DEBUG", None)
    env.update(
        SECRET_KEY="soak-" + "s" * 50,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PORT=str(port),
        REALTIME_UPDATE_INTERVAL=str(interval),
        MARKET_DATA_SOURCES="simulated",
        PYTHONUNBUFFERED="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


@dataclass
class Life:
    """One incarnation of a process."""

    pid: int
    started: float
    ended: float | None = None
    code: int | None = None
    killed: bool = False


@dataclass
class Supervised:
    """One Procfile line (or the Redis server), kept alive: SIGKILL takes its whole process
    group (a dyno or container dies whole), the supervisor starts it again."""

    name: str
    command: str
    env: dict[str, str]
    log_dir: Path
    lives: list[Life] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.log_dir / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(
            ["bash", "-c", self.command],
            cwd=BASE_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.lives.append(Life(pid=self.proc.pid, started=time.time()))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reap(self) -> bool:
        """True when the current incarnation has ended (recorded once)."""
        if self.proc is None or self.proc.poll() is None or self.lives[-1].ended is not None:
            return False
        self.lives[-1].ended, self.lives[-1].code = time.time(), self.proc.returncode
        return True

    def sigkill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.lives[-1].killed = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.sigkill()
                self.proc.wait()
        self.reap()

    def rss_kb(self) -> int:
        """Resident memory of the incarnation's whole process group (Celery's pool, the
        web line's Daphne processes), from /proc."""
        if not self.alive() or self.proc is None:
            return 0
        total = 0
        for pid in group_pids(self.proc.pid):
            with contextlib.suppress(OSError):  # ended meanwhile
                total += proc_rss_kb(pid)
        return total


def group_pids(pgid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                pids.append(int(stat.parent.name))
    return pids


class SupervisedRedis(Supervised):
    """The soak's own Redis server (no persistence: a restart comes back empty, as a
    platform's does), started with the embedded-Redis helper on a fixed port."""

    def __init__(self, port: int, log_dir: Path) -> None:
        super().__init__(name="redis", command="", env={}, log_dir=log_dir)
        self.port = port

    def start(self) -> None:
        _, self.proc = start_redis(port=self.port, record=False)
        self.lives.append(Life(pid=self.proc.pid, started=time.time()))

    def stop(self) -> None:
        if self.proc is not None:
            stop_redis(self.proc)
        self.reap()


def http_answers(port: int) -> bool:
    # A path nothing serves: Django's quick 404, none of /api/health/'s checks.
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/soak-probe/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


@dataclass
class Event:
    at: float
    kind: str  # "kill", "exit" (died on its own), "restart", "back" (web port answers again)
    name: str
    detail: str = ""


class Supervisor:
    """Restarts every process that ends, `delay` seconds later; records kills, exits,
    restarts and when the web port answers again."""

    def __init__(self, procs: dict[str, Supervised], web_port: int, delay: float) -> None:
        self.procs = procs
        self.web_port = web_port
        self.delay = delay
        self.events: list[Event] = []
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-supervisor", daemon=True)
        self._lock = threading.Lock()

    def record(self, kind: str, name: str, detail: str = "") -> None:
        with self._lock:
            self.events.append(Event(time.time(), kind, name, detail))

    def start(self) -> None:
        self._thread.start()

    def kill(self, name: str) -> None:
        self.procs[name].sigkill()
        self.record("kill", name)

    def _run(self) -> None:
        due: dict[str, float] = {}
        while not self.stopping.is_set():
            now = time.time()
            for name, proc in self.procs.items():
                if proc.reap():
                    life = proc.lives[-1]
                    if not life.killed:
                        self.record("exit", name, f"code {life.code}")
                    due[name] = now + self.delay
            for name, at in list(due.items()):
                if now >= at and not self.stopping.is_set():
                    del due[name]
                    self.procs[name].start()
                    self.record("restart", name)
                    if name == "web":
                        threading.Thread(target=self._web_back, daemon=True).start()
            time.sleep(0.05)

    def _web_back(self) -> None:
        """Back = the first HTTP answer (any status): a listening port alone is not enough,
        the web line's parent listens before its Daphne processes can serve."""
        deadline = time.time() + 120
        while time.time() < deadline and not self.stopping.is_set():
            if http_answers(self.web_port):
                self.record("back", "web")
                return
            time.sleep(0.05)
        self.record("exit", "web", "no HTTP answer 120 s after restart")

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)
