"""config/respawn.py brings a dead worker back (kombu 5.7 + redis-py 8 can crash a
worker on a Redis restart; make run relies on respawn for that)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.live]


def test_respawn_restarts_a_child_that_dies_and_stops_it_on_sigterm(tmp_path):
    marker = tmp_path / "starts"
    child = f"import os,time; open({str(marker)!r},'a').write(str(os.getpid())+'\\n'); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-m", "config.respawn", sys.executable, "-c", child],
                            stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not marker.exists() or not marker.read_text().strip():
            assert time.monotonic() < deadline, "the child never started"
            time.sleep(0.05)
        first = int(marker.read_text().split()[0])
        subprocess.run(["kill", "-9", str(first)], check=True)  # the child "crashes"
        deadline = time.monotonic() + 10
        while len(marker.read_text().split()) < 2:
            assert time.monotonic() < deadline, "respawn did not restart the dead child"
            time.sleep(0.05)
        second = int(marker.read_text().split()[1])
        assert second != first
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        time.sleep(0.2)
        assert subprocess.run(["kill", "-0", str(second)], capture_output=True).returncode != 0, "child left running"
        _, stderr = proc.communicate(timeout=10)
        assert b"restarting in" in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
