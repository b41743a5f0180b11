from __future__ import annotations

import signal
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from backend.market.models import PriceHistory, Quote, RefreshRun
from backend.market.services.manager import data_source_manager
from tests.live import BASE_DIR, process_env
from tests.tasks.prices_helpers import hold, wait_for

# transaction=True: the commands run batches on threads with their own connections.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def simulated(redis_client):
    redis_client.flushdb()
    with override_settings(MARKET_DATA_SOURCES=["simulated"]):
        data_source_manager.cache_clear()
        yield
    data_source_manager.cache_clear()


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_update_asset_prices_dry_run_shows_prices_and_stores_nothing():
    hold(["AAPL", "MSFT"])
    out = run("update_asset_prices", "--dry-run", "--verbose")
    assert "AAPL" in out
    assert "simulated" in out
    assert "dry run: 2/2 priced, nothing stored" in out
    assert not Quote.objects.exists()


def test_update_asset_prices_stores_the_named_symbols_and_loads_history():
    hold(["AAPL"])
    out = run("update_asset_prices", "--symbols", "AAPL", "--historical", "--days", "5")
    assert "1/1 stored" in out
    assert "history: 5 bars" in out
    assert Quote.objects.get().source == "simulated"
    assert PriceHistory.objects.count() == 6
    assert RefreshRun.objects.get().kind == RefreshRun.Kind.FORCED


def test_update_asset_prices_refuses_a_malformed_symbol():
    with pytest.raises(CommandError, match="1-20 characters"):
        run("update_asset_prices", "--symbols", "not ok")


def test_start_price_feed_runs_cycles_without_beat():
    hold(["AAPL", "MSFT"])
    out = run("start_price_feed", "--interval", "0.1", "--batch-size", "1", "--max-workers", "2", "--cycles", "2")
    assert out.count("2/2 stored") == 2
    assert RefreshRun.objects.filter(kind=RefreshRun.Kind.SCHEDULED, batches_total=2).count() == 2


@pytest.mark.live
def test_start_price_feed_stops_cleanly_on_ctrl_c():
    hold(["AAPL"])
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "start_price_feed", "--interval", "0.5"],
        cwd=BASE_DIR,
        env=process_env(MARKET_DATA_SOURCES="simulated"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: RefreshRun.objects.exists(), 30, "a first cycle")
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "price feed stopped" in out
    assert "Traceback" not in out
