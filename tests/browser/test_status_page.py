"""The staff status page in a real browser: what it shows, and that it refreshes by itself."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, expect

from backend.market.models import Asset, RefreshRun
from backend.market.services.stream.state import stream_state_clear, stream_state_write
from tests.browser.conftest import WebProcess, off_loop

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _finished_run(seconds: float, failed: int) -> RefreshRun:
    run = RefreshRun.objects.create(
        batches_total=2, batches_finished=2, symbols_requested=60, symbols_succeeded=60 - failed,
        symbols_failed=failed, source_counts={"simulated": 60 - failed},
    )  # fmt: skip
    RefreshRun.objects.filter(pk=run.pk).update(finished_at=run.started_at + timedelta(seconds=seconds))
    return run


@pytest.fixture
def staff(web: WebProcess) -> User:
    Asset.objects.create(symbol="GONE", tracking_status=Asset.TrackingStatus.UNKNOWN, unknown_since=timezone.now())
    Asset.objects.create(symbol="FLAKY", tracking_status=Asset.TrackingStatus.FAILING, last_error="yahoo: timeout")
    _finished_run(1.25, failed=1)
    return User.objects.create_user("ops", password="pw-ops-12345", is_staff=True)


def test_status_page_shows_cycles_problem_symbols_sources_and_flower_and_refreshes_itself(
    staff: User, page: Page, shot
):
    page.goto("/status/")
    page.get_by_label("Username").fill("ops")
    page.get_by_label("Password").fill("pw-ops-12345")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url("/status/")
    expect(page.locator("#last-duration")).to_have_text("1.25 s")
    problems = page.locator("#problems")
    expect(problems).to_contain_text("GONE")
    expect(problems).to_contain_text("unknown")
    expect(problems).to_contain_text("FLAKY")
    expect(problems).to_contain_text("yahoo: timeout")
    expect(page.locator("#sources")).to_contain_text("simulated")
    expect(page.locator("#flower-link")).to_have_attribute("href", "http://localhost:5555/")
    expect(page.locator("#connections")).not_to_contain_text("Loading")
    shot("status")

    off_loop(_finished_run, 3.5, failed=0)
    expect(page.locator("#last-duration")).to_have_text("3.50 s", timeout=15_000)
    expect(page.locator("#runs tbody tr")).to_have_count(2)
    shot("status-refreshed")


def _stream_running(*, connected: bool, aapl_traded_ago: float) -> None:
    """The state the stream process writes every second (tasks/stream.py)."""
    now = time.time()
    stream_state_write(
        state={"source": "finnhub", "url": "wss://ws.finnhub.io", "connected": 1 if connected else 0,
               "connected_since": now - 60 if connected else "", "followed": "AAPL BTC-USD", "flush_ms": 250,
               "messages_per_second": 42.5, "trades_per_second": 180.25, "reconnects": 3,
               "last_message_at": now, "last_error": "" if connected else "ConnectionClosedError: no close frame",
               "flush_p50_ms": 14.5, "flush_p99_ms": 48.25},
        last_trades={"AAPL": now - aapl_traded_ago},
    )  # fmt: skip


def test_status_page_shows_the_streams_state_rates_and_each_symbols_last_trade_age(staff: User, page: Page, shot):
    off_loop(_stream_running, connected=True, aapl_traded_ago=4.0)
    try:
        page.goto("/status/")
        page.get_by_label("Username").fill("ops")
        page.get_by_label("Password").fill("pw-ops-12345")
        page.get_by_role("button", name="Log in").click()
        stream = page.locator("#stream")
        expect(stream.locator(".badge")).to_have_text("connected")
        expect(page.locator("#stream-facts")).to_contain_text("2 of at most 50 symbols followed")
        expect(page.locator("#stream-facts")).to_contain_text("42.5 messages/s")
        expect(page.locator("#stream-facts")).to_contain_text("a flush takes 14.5 ms (p99 48.25 ms)")
        aapl = stream.locator("tbody tr", has_text="AAPL")
        expect(aapl).to_contain_text(re.compile(r"(?<![\d.])[4-9]\.\d s ago"))
        expect(stream.locator("tbody tr", has_text="BTC-USD")).to_contain_text("no trade yet")
        shot("status-stream")

        off_loop(_stream_running, connected=False, aapl_traded_ago=4.0)
        expect(stream.locator(".badge")).to_have_text("disconnected", timeout=15_000)
        expect(page.locator("#stream-facts")).to_contain_text("no close frame")
        off_loop(stream_state_clear)  # a stopped process; this web process has streaming off
        expect(stream).to_contain_text("Streaming is off", timeout=15_000)
    finally:
        off_loop(stream_state_clear)


def test_status_page_is_refused_to_a_non_staff_user(web: WebProcess, page: Page):
    off_loop(User.objects.create_user, "plain", password="pw-plain-123")
    page.goto("/accounts/login/?next=/status/")
    page.get_by_label("Username").fill("plain")
    page.get_by_label("Password").fill("pw-plain-123")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("body")).to_contain_text("403")
