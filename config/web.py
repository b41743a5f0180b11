"""The `web` process: WEB_CONCURRENCY Daphne processes serving one port (docs/scale.md).

    python -m config.web --bind 0.0.0.0 --port 8000 [daphne options] config.asgi:application

A small parent (no Django) opens the listening socket itself, with a listen backlog of
WEB_LISTEN_BACKLOG (Daphne's own is 50: a reconnect storm of thousands of clients was refused
and retried for seconds), and starts WEB_CONCURRENCY children `daphne --fd N ...` that all
accept from that one socket: the kernel hands each connection to whichever child accepts it
first. Every child has its own push hub, so each receives every published batch and serves
its own sockets; the connection registry is in Redis, so the per-user limits and the stats
count every child.

SIGTERM or SIGINT to the parent stops the children (SIGTERM, then SIGKILL after
WEB_STOP_TIMEOUT seconds) and exits. A child that dies is started again, after a pause
that grows while it keeps dying (1 s doubling to 30 s). SIGHUP replaces every child (a
deploy): new children start, the old ones are stopped, and the socket stays open all along,
so reconnecting clients wait in the backlog instead of being refused.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

RESTART_DELAY_FIRST = 1.0
RESTART_DELAY_MAX = 30.0
STABLE_AFTER = 60.0  # a child that lived this long starts again without the grown pause


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"web: {name}={raw!r} is not a whole number") from None
    if value < 1:
        raise SystemExit(f"web: {name} must be at least 1, not {value}")
    return value


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A bound, listening, inheritable IPv4 TCP socket (Daphne's `--fd` adopts IPv4 only).
    The kernel caps `backlog` at net.core.somaxconn."""
    if ":" in host:
        raise SystemExit(f"web: --bind {host}: only IPv4 addresses can be shared by the processes")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def child_argv(sock: socket.socket, daphne_args: list[str]) -> list[str]:
    return [sys.executable, "-m", "daphne", "--fd", str(sock.fileno()), *daphne_args]


@dataclass
class Child:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    delay: float = RESTART_DELAY_FIRST
    restart_at: float | None = field(default=None)


class Supervisor:
    def __init__(self, argv: list[str], sock: socket.socket, processes: int, stop_timeout: float) -> None:
        self.argv = argv
        self.sock = sock
        self.children = [Child(i) for i in range(processes)]
        self.stop_timeout = stop_timeout
        self.stopping = False
        self.reloading = False
        self.retiring: list[subprocess.Popen[bytes]] = []

    def start(self, child: Child) -> None:
        env = {**os.environ, "WEB_PROCESS_INDEX": str(child.index)}
        child.proc = subprocess.Popen(self.argv, pass_fds=(self.sock.fileno(),), env=env)
        child.started_at = time.monotonic()
        child.restart_at = None
        log(f"process {child.index} started (pid {child.proc.pid})")

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reloading = True
        else:
            self.stopping = True

    def run(self) -> int:
        for child in self.children:
            self.start(child)
        while not self.stopping:
            if self.reloading:
                self.reload()
            self.check()
            time.sleep(0.2)
        return self.stop()

    def reload(self) -> None:
        self.reloading = False
        log("reloading: new processes start, the old ones stop")
        for child in self.children:
            old = child.proc
            self.start(child)
            child.delay = RESTART_DELAY_FIRST
            if old is not None and old.poll() is None:
                old.send_signal(signal.SIGTERM)
                self.retiring.append(old)

    def reap(self) -> None:
        self.retiring = [p for p in self.retiring if p.poll() is None]

    def check(self) -> None:
        self.reap()
        now = time.monotonic()
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                code = child.proc.returncode
                if now - child.started_at > STABLE_AFTER:
                    child.delay = RESTART_DELAY_FIRST
                child.restart_at = now + child.delay
                pid = child.proc.pid
                log(f"process {child.index} (pid {pid}) exited with {code}; restarting in {child.delay:.0f} s")
                child.delay = min(child.delay * 2, RESTART_DELAY_MAX)
                child.proc = None
            elif child.proc is None and child.restart_at is not None and now >= child.restart_at:
                self.start(child)

    def stop(self) -> int:
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        running += [p for p in self.retiring if p.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"pid {proc.pid} did not stop within {self.stop_timeout:.0f} s; killing it")
                proc.kill()
                proc.wait()
        self.sock.close()
        log("stopped")
        return 0


def log(message: str) -> None:
    print(f"web: {message}", file=sys.stderr, flush=True)


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m config.web",
        description="WEB_CONCURRENCY Daphne processes on one port; other options go to daphne.",
    )
    parser.add_argument("-b", "--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("-p", "--port", type=int, default=None, help="port (default: $PORT, else 8000)")
    parser.add_argument("--processes", type=int, default=None, help="default: $WEB_CONCURRENCY, else 1")
    parser.add_argument("--backlog", type=int, default=None, help="default: $WEB_LISTEN_BACKLOG, else 4096")
    args, daphne_args = parser.parse_known_args(argv)
    if not daphne_args or daphne_args[-1].startswith("-"):
        parser.error("the ASGI application (e.g. config.asgi:application) must come last")
    return args, daphne_args


def main(argv: list[str]) -> int:
    args, daphne_args = parse(argv)
    port = args.port if args.port is not None else env_int("PORT", 8000)
    processes = args.processes if args.processes is not None else env_int("WEB_CONCURRENCY", 1)
    backlog = args.backlog if args.backlog is not None else env_int("WEB_LISTEN_BACKLOG", 4096)
    stop_timeout = float(env_int("WEB_STOP_TIMEOUT", 25))
    if processes < 1:
        raise SystemExit("web: at least one process")
    sock = listening_socket(args.bind, port, backlog)
    supervisor = Supervisor(child_argv(sock, daphne_args), sock, processes, stop_timeout)
    signal.signal(signal.SIGTERM, supervisor.on_signal)
    signal.signal(signal.SIGINT, supervisor.on_signal)
    signal.signal(signal.SIGHUP, supervisor.on_signal)
    log(f"{processes} Daphne process(es) on {args.bind}:{port} (listen backlog {backlog})")
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
