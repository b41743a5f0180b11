"""The dashboard in a real browser (Chromium) against a real Daphne, database and Redis."""

from __future__ import annotations

import importlib.util

import pytest
from playwright.sync_api import Page, expect

from backend.market.models import Asset
from backend.realtime.events import asset_event, portfolio_event, position_event, unknown_symbol_event
from backend.realtime.publish import publish_batch
from tests.browser.conftest import WebProcess, off_loop
from tests.browser.data import DEMO_PASSWORD, Demo, asset_update, demo_priced, portfolio_update, position_update

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

# The subscribe protocol (subscribe_asset / subscribe_portfolio) arrives with the push layer
# (issue 5), whose branch adds consumers.schema; without it the server cannot put this page in
# an asset or portfolio group, so group-targeted updates cannot reach it.
needs_subscribe_protocol = pytest.mark.skipif(
    importlib.util.find_spec("consumers.schema") is None,
    reason="needs the push layer's subscribe protocol (consumers.schema, issue 5)",
)


@pytest.fixture
def demo(web: WebProcess) -> Demo:
    return demo_priced()


def log_in(page: Page, username: str = "demo", password: str = DEMO_PASSWORD) -> None:
    page.goto("/")
    expect(page).to_have_url("/accounts/login/?next=/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url("/")
    # The page's modules have run (dashboard.js, then ledger.js on DOMContentLoaded): forms and
    # buttons are wired, so a click now is not a plain form submission.
    page.wait_for_function("() => window.tickerflow?.ledger?.ready === true")


def wait_until_subscribed(page: Page, *keys: str) -> None:
    """The server acknowledged these subscriptions (and sent their snapshots) on the current
    connection: an update published now cannot be overtaken by a snapshot."""
    page.wait_for_function("ids => ids.every(k => window.tickerflow?.subscribed.has(k))", arg=list(keys))


def indicator(page: Page):
    return page.locator("#connection-status")


def card(page: Page, portfolio_id: int):
    return page.locator(f'.portfolio[data-portfolio-id="{portfolio_id}"]')


def test_logging_in_shows_the_demo_portfolios_valued_with_a_live_connection(demo: Demo, page: Page, shot):
    page.goto("/")
    shot("login-form")
    log_in(page)
    expect(indicator(page)).to_have_attribute("data-status", "connected")
    growth = card(page, demo.growth_id)
    expect(growth.get_by_role("heading", name="Growth")).to_be_visible()
    expect(card(page, demo.income_id).get_by_role("heading", name="Income & Crypto")).to_be_visible()
    expect(growth.locator("tbody tr")).to_have_count(6)
    expect(growth.locator('tr[data-symbol="AAPL"] .price')).not_to_have_text("…")
    expect(growth.locator(".total-value")).to_have_text(_money_re())
    expect(growth.locator(".daily-change")).to_have_class(_class_re("up"))
    # value chart and sparklines are drawn from history
    expect(growth.locator(".value-chart polyline")).to_have_count(1)
    expect(growth.locator('tr[data-symbol="AAPL"] .spark polyline')).to_have_count(1)
    shot("dashboard")
    with page.expect_response(f"**/dashboard/portfolios/{demo.growth_id}/values/?days=7") as answer:
        growth.get_by_role("button", name="1W").click()
    assert answer.value.ok
    expect(growth.get_by_role("button", name="1W")).to_have_attribute("aria-pressed", "true")
    expect(growth.locator(".value-chart polyline")).to_have_count(1)


def test_the_dashboard_is_readable_on_a_phone(demo: Demo, page: Page, shot):
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page)
    expect(indicator(page)).to_have_attribute("data-status", "connected")
    growth = card(page, demo.growth_id)
    expect(growth.locator(".total-value")).to_be_visible()
    # nothing wider than the screen: no sideways scrolling of the page itself
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # the positions table fits its card: no sideways scrolling inside it either
    assert growth.locator(".table-scroll").evaluate("el => el.scrollWidth <= el.clientWidth")
    expect(page.locator("#watchlist-symbol")).to_be_visible()
    shot("phone")


def test_indicator_goes_down_while_the_web_process_is_stopped_and_updates_resume_after_restart(
    demo: Demo, web: WebProcess, page: Page, shot
):
    log_in(page)
    expect(indicator(page)).to_have_attribute("data-status", "connected")
    wait_until_subscribed(page, f"portfolio:{demo.growth_id}", "asset:MSFT")
    row = card(page, demo.growth_id).locator('tr[data-symbol="MSFT"]')

    off_loop(publish_batch, [position_event(demo.user_id, position_update(demo.growth_id, "MSFT", "12", "401.5"))])
    expect(row.locator(".price")).to_have_text("401.50")
    expect(row.locator(".price")).to_have_class(_class_re("flash-up"))
    expect(row.locator(".value")).to_have_text(_money_re("4,818.00"))
    shot("connected-update")

    web.stop()
    expect(indicator(page)).to_have_attribute("data-status", "reconnecting")
    expect(indicator(page)).to_contain_text("Reconnecting")
    shot("web-stopped-reconnecting")

    web.start()
    # backoff is capped at 30 s; a few attempts in, the next one is well inside this
    expect(indicator(page)).to_have_attribute("data-status", "connected", timeout=45_000)
    wait_until_subscribed(page, f"portfolio:{demo.growth_id}", "asset:MSFT")
    shot("web-restarted-connected")

    off_loop(publish_batch, [position_event(demo.user_id, position_update(demo.growth_id, "MSFT", "12", "433.25"))])
    expect(row.locator(".price")).to_have_text("433.25")
    expect(row.locator(".value")).to_have_text(_money_re("5,199.00"))
    shot("update-after-restart")


def test_watchlist_add_and_remove_persist_and_a_bad_symbol_gets_a_clear_message(demo: Demo, page: Page, shot):
    off_loop(Asset.objects.create, symbol="NOSUCH", tracking_status=Asset.TrackingStatus.UNKNOWN)
    log_in(page)
    symbol_input = page.locator("#watchlist-symbol")
    message = page.locator("#watchlist-message")
    items = page.locator("#watchlist li")
    expect(items).to_have_count(0)

    symbol_input.fill("bad symbol!")
    page.get_by_role("button", name="Add").click()
    expect(message).to_be_visible()
    expect(message).to_contain_text("not a valid symbol")
    expect(items).to_have_count(0)
    shot("bad-symbol-format")

    symbol_input.fill("nosuch")
    page.get_by_role("button", name="Add").click()
    expect(message).to_contain_text("NOSUCH is not known to any market data source")
    expect(items).to_have_count(0)
    shot("unknown-symbol")

    symbol_input.fill("tsla")
    page.get_by_role("button", name="Add").click()
    expect(page.locator('#watchlist li[data-symbol="TSLA"]')).to_be_visible()
    expect(page.locator('#watchlist li[data-symbol="TSLA"] .price')).not_to_have_text("…")
    expect(message).to_be_hidden()
    expect(symbol_input).to_have_value("")
    shot("added-tsla")

    page.reload()
    expect(page.locator('#watchlist li[data-symbol="TSLA"]')).to_be_visible()
    shot("tsla-kept-after-reload")

    page.get_by_role("button", name="Remove TSLA").click()
    expect(items).to_have_count(0)
    page.reload()
    expect(indicator(page)).to_have_attribute("data-status", "connected")
    expect(items).to_have_count(0)
    shot("removed-tsla")


def test_a_browser_without_a_session_is_told_it_is_signed_out(demo: Demo, page: Page, shot):
    log_in(page)
    expect(indicator(page)).to_have_attribute("data-status", "connected")
    page.context.clear_cookies()
    # Dropping the socket makes the client reconnect; without the session cookie the server
    # closes with 4401 and the client must stop and say so.
    page.evaluate("window.tickerflow.client.socket.close(4000)")
    expect(indicator(page)).to_have_attribute("data-status", "signed_out", timeout=45_000)
    expect(indicator(page).get_by_role("link", name="log in")).to_be_visible()
    shot("signed-out")


@needs_subscribe_protocol
def test_a_published_price_change_shows_on_screen_without_a_reload(demo: Demo, page: Page, shot):
    log_in(page)
    expect(indicator(page)).to_have_attribute("data-status", "connected")
    wait_until_subscribed(page, f"portfolio:{demo.growth_id}", "asset:AAPL")
    growth = card(page, demo.growth_id)
    shot("before")
    off_loop(
        publish_batch,
        [
            asset_event(asset_update("AAPL", "250.75")),
            portfolio_event(portfolio_update(demo.growth_id, "Growth", "123456.78", "AAPL", "25", "250.75")),
        ],
    )
    expect(growth.locator('tr[data-symbol="AAPL"] .price')).to_have_text("250.75")
    expect(growth.locator('tr[data-symbol="AAPL"] .value')).to_have_text(_money_re("6,268.75"))
    expect(growth.locator(".total-value")).to_have_text(_money_re("123,456.78"))
    expect(growth.locator('tr[data-symbol="AAPL"] .price')).to_have_class(_class_re("flash-up"))
    expect(growth.locator(".daily-change")).to_have_class(_class_re("down"))
    expect(growth.locator(".total-return")).to_have_class(_class_re("up"))
    shot("after-price-change")


def _money_re(value: str | None = None):
    import re

    return re.compile(re.escape(value) if value else r"^[\d,]+\.\d\d$")


def _class_re(name: str):
    import re

    return re.compile(rf"(^|\s){name}(\s|$)")


def _watch(user_id: int, symbol: str) -> None:
    from backend.dashboard.models import WatchlistItem

    asset = Asset.objects.create(symbol=symbol, tracking_status=Asset.TrackingStatus.PENDING)
    WatchlistItem.objects.create(user_id=user_id, asset=asset)


@needs_subscribe_protocol
def test_a_watched_symbol_the_sources_reject_is_marked_unknown_live(demo: Demo, page: Page, shot):
    off_loop(_watch, demo.user_id, "GHOST")
    log_in(page)
    ghost = page.locator('#watchlist li[data-symbol="GHOST"]')
    expect(ghost).to_be_visible()
    page.wait_for_function("() => window.tickerflow?.subscribed.has('asset:GHOST')")
    off_loop(publish_batch, [unknown_symbol_event("GHOST")])
    expect(ghost).to_have_attribute("data-status", "unknown")
    expect(page.locator("#watchlist-message")).to_contain_text("GHOST is not known to any market data source")
    shot("ghost-unknown")
