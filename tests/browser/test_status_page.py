"""The staff status page in a real browser: what it shows, and that it refreshes by itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, expect

from backend.market.models import Asset, RefreshRun
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


def test_status_page_is_refused_to_a_non_staff_user(web: WebProcess, page: Page):
    off_loop(User.objects.create_user, "plain", password="pw-plain-123")
    page.goto("/accounts/login/?next=/status/")
    page.get_by_label("Username").fill("plain")
    page.get_by_label("Password").fill("pw-plain-123")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("body")).to_contain_text("403")
