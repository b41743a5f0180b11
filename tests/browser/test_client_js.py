"""Runs the JavaScript client's unit tests (tests/browser/js, `node --test`, fake WebSocket and
timers: reconnect backoff, re-subscribe, 4401/4403, seq gaps) as part of the suite."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.live import BASE_DIR


def test_the_javascript_client_unit_tests_pass_under_node():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    result = subprocess.run(
        [node, "--test", "tests/browser/js/"], cwd=BASE_DIR, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
