"""Keep one process alive for `make run`: restart it when it dies (a worker can die on a Redis
restart, docs/operations.md, "Faults and recovery"), stop it when we are asked to stop. Heroku and compose restart
dead processes themselves, so the Procfile does not use this."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import FrameType


def main(argv: list[str]) -> int:
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    delay = 1.0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(argv)
        code = child.wait()
        if stopping:
            return code
        if time.monotonic() - started > 60:
            delay = 1.0
        print(f"respawn: {argv[0]} exited with {code}; restarting in {delay:.0f} s", file=sys.stderr, flush=True)
        time.sleep(delay)
        delay = min(delay * 2, 30.0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
