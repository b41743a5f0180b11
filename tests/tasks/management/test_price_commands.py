from __future__ import annotations

import signal
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from backend.market.models import Asset, PriceHistory, Quote, RefreshRun
from backend.market.services.manager import data_source_manager
from tests.live import BASE_DIR, process_env
from tests.tasks.prices_helpers import hold, price_all, wait_for

# transaction=True: the commands run batches on threads with their own connections.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def simulated(redis_client):
    redis_client.flushdb()
    with override_settings(MARKET_DATA_SOURCES=["simulated"]):
        data_source_manager.cache_clear()
        yield
    data_source_manager.cache_clear()


@pytest.fixture
def market_apis(upstream):
    """Yahoo and Finnhub played by the fake upstream instead of the simulated source (which
    prices every symbol: it knows no unknown ones)."""
    env = {k: v for k, v in upstream.env(("yahoo", "finnhub")).items() if k != "MARKET_DATA_SOURCES"}
    with override_settings(MARKET_DATA_SOURCES=["yahoo", "finnhub"], **env):
        data_source_manager.cache_clear()
        yield upstream
    data_source_manager.cache_clear()


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def run_failing(*args: str) -> tuple[str, CommandError]:
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command(*args, stdout=out)
    return out.getvalue(), raised.value


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


def test_update_asset_prices_tracks_new_symbols_and_stores_their_quotes():
    symbols = [f"N{i:03d}" for i in range(60)]
    out = run("update_asset_prices", "--symbols", *symbols)
    assert "60/60 stored, 60 changed, 0 failed, 0 unknown" in out
    assert Asset.objects.filter(symbol__in=symbols, tracking_status=Asset.TrackingStatus.TRACKED).count() == 60
    assert Quote.objects.count() == 60
    assert RefreshRun.objects.get().symbols_succeeded == 60


def test_update_asset_prices_with_new_known_unknown_and_rejected_symbols_accounts_for_each(market_apis):
    hold(["AAPL"])
    price_all(market_apis, ["AAPL", "NEWCO"])
    market_apis.set_quote("HALT", 0, previous_close=10.0)  # every source answers a zero
    out = run("update_asset_prices", "--symbols", "AAPL", "newco", "NOPE", "HALT")
    assert "run " in out
    assert "2/4 stored, 2 changed, 1 failed, 1 unknown" in out
    assert "failed HALT: yahoo: rejected quote: price must be above zero" in out  # named, with why
    assert "unknown to every source: NOPE" in out
    assert {q.asset.symbol for q in Quote.objects.select_related("asset")} == {"AAPL", "NEWCO"}
    statuses = dict(Asset.objects.values_list("symbol", "tracking_status"))
    assert statuses == {
        "AAPL": Asset.TrackingStatus.TRACKED,
        "NEWCO": Asset.TrackingStatus.TRACKED,
        "NOPE": Asset.TrackingStatus.UNKNOWN,
        "HALT": Asset.TrackingStatus.FAILING,
    }
    run_record = RefreshRun.objects.get()
    assert (run_record.symbols_succeeded, run_record.symbols_failed) == (2, 2)


def test_update_asset_prices_fails_when_it_stored_none_of_the_symbols_asked_for(market_apis):
    market_apis.set_quote("HALT", float("nan"), previous_close=10.0)
    out, error = run_failing("update_asset_prices", "--symbols", "NOPE", "HALT")
    assert "0/2 stored, 0 changed, 1 failed, 1 unknown" in out  # the summary is still written
    assert "failed HALT:" in out
    assert "stored none of the 2 symbols asked for" in str(error)


def test_update_asset_prices_verbose_lists_what_it_stored(market_apis):
    price_all(market_apis, ["AAPL", "MSFT"])
    out = run("update_asset_prices", "--symbols", "MSFT", "AAPL", "--verbose")
    assert "stored: AAPL, MSFT" in out


@pytest.mark.live
def test_update_asset_prices_exit_status_is_non_zero_only_when_nothing_was_stored(upstream):
    price_all(upstream, ["NEWCO"])
    env = process_env(**upstream.env(("yahoo", "finnhub")))

    def command(*symbols: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "manage.py", "update_asset_prices", "--symbols", *symbols]
        return subprocess.run(argv, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60)

    nothing = command("NOPE")
    assert nothing.returncode == 1, nothing.stdout + nothing.stderr
    assert "0/1 stored" in nothing.stdout
    assert "stored none of the 1 symbols asked for" in nothing.stderr
    some = command("NEWCO", "NOPE2")
    assert some.returncode == 0, some.stdout + some.stderr
    assert "1/2 stored, 1 changed, 0 failed, 1 unknown" in some.stdout
    assert Quote.objects.get().asset.symbol == "NEWCO"
