"""Price alerts on the dashboard in Chromium, against a real Daphne, database and Redis:
create and delete alerts from a symbol's row, a toast and an unread badge when one fires
(pushed live), the unread list and marking read, and the catch-up on page load of what
fired while the page was closed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from backend.alerts.models import Alert, AlertEvent
from backend.alerts.services.check import CheckedQuote, alerts_check
from backend.market.models import Asset
from backend.realtime.publish import publish_batch
from tests.browser.conftest import WebProcess, off_loop
from tests.browser.data import Demo, demo_priced

from .test_dashboard import card, indicator, log_in

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(web: WebProcess) -> Demo:
    return demo_priced()


def fire(symbol: str, price: str, minutes_ago: int = 0) -> int:
    """A stored quote of `symbol` at `price` checked against the alerts (as the pipeline does);
    returns how many fired. Not published."""
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return len(alerts_check(quotes=[CheckedQuote(symbol, Decimal(price), Decimal(1), at)]).fired)


def fire_and_publish(symbol: str, price: str) -> int:
    check = alerts_check(quotes=[CheckedQuote(symbol, Decimal(price), Decimal(1), datetime.now(UTC))])
    publish_batch(check.events)
    return len(check.fired)


def test_create_and_delete_alerts_from_a_row_then_a_firing_toasts_and_can_be_marked_read(demo: Demo, page: Page, shot):
    log_in(page)
    expect(indicator(page)).to_have_attribute("data-status", "connected")
    row = card(page, demo.growth_id).locator('tr[data-symbol="AAPL"]')
    expect(row.locator(".alert-btn svg.bell")).to_have_count(1)  # an icon, not an emoji the font may lack
    row.get_by_role("button", name="Alerts for AAPL").click()
    dialog = page.locator("#alert-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".alert-symbol")).to_have_text("AAPL")
    expect(dialog.locator(".alert-none")).to_be_visible()
    dialog.get_by_label("When").select_option("above")
    dialog.get_by_label("Threshold").fill("10")
    dialog.get_by_role("button", name="Create alert").click()
    expect(dialog.locator("#alert-list li")).to_have_count(1)
    dialog.get_by_label("When").select_option("below")
    dialog.get_by_label("Threshold").fill("1")
    dialog.get_by_label("Repeat").select_option("rearm")
    dialog.get_by_role("button", name="Create alert").click()
    expect(dialog.locator("#alert-list li")).to_have_count(2)
    dialog.get_by_label("Threshold").fill("abc")
    dialog.get_by_role("button", name="Create alert").click()
    expect(page.locator("#alert-message")).to_contain_text("number")
    shot("alert-dialog")
    dialog.get_by_role("button", name=re.compile(r"Delete alert Price at or below 1")).click()
    expect(dialog.locator("#alert-list li")).to_have_count(1)
    assert off_loop(lambda: list(Alert.objects.values_list("condition", "threshold", "asset__symbol"))) == [
        ("above", Decimal(10), "AAPL")
    ]
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    expect(row.locator(".alert-btn")).to_have_class(re.compile(r"\bhas-alerts\b"))

    badge = page.locator("#notif-count")
    expect(badge).to_be_hidden()
    assert off_loop(fire_and_publish, "AAPL", "250.5") == 1
    expect(page.locator("#toast")).to_contain_text("AAPL is at 250.5")
    expect(badge).to_have_text("1")
    expect(row.locator(".alert-btn")).not_to_have_class(re.compile(r"\bhas-alerts\b"))  # `once`: done
    shot("alert-fired-toast")
    page.get_by_role("button", name=re.compile(r"Notifications: 1 unread")).click()
    items = page.locator("#notif-list li")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("at or above your alert at 10")
    shot("unread-list")
    items.first.get_by_role("button", name="Mark read").click()
    expect(items).to_have_count(0)
    expect(badge).to_be_hidden()
    assert off_loop(lambda: AlertEvent.objects.get().read_at) is not None


def test_what_fired_while_the_page_was_closed_shows_as_unread_on_load(demo: Demo, page: Page):
    def setup() -> None:
        asset = Asset.objects.get(symbol="MSFT")
        Alert.objects.create(owner_id=demo.user_id, asset=asset, condition="below", threshold=Decimal(500))
        Alert.objects.create(owner_id=demo.user_id, asset=asset, condition="change_percent_above", threshold=1)
        assert fire("MSFT", "321.75", minutes_ago=5) == 2

    off_loop(setup)
    log_in(page)
    expect(page.locator("#notif-count")).to_have_text("2")
    page.locator("#notif-toggle").click()
    expect(page.locator("#notif-list li")).to_have_count(2)
    expect(page.locator("#notif-list")).to_contain_text("MSFT is at 321.75")
