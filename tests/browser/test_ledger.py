"""The ledger on the dashboard in Chromium, against a real Daphne, database and Redis: each
position shows its currency and its value in the portfolio's base currency (also after a
live price), and a portfolio's transactions panel lists its ledger, adds a transaction,
refuses a bad one with the server's reason, imports a CSV (all or nothing, its errors listed
by line) and deletes an entry, the positions following each change."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from backend.market.models import Quote
from backend.portfolios.models import Position, Transaction
from backend.realtime.events import asset_event, portfolio_event
from backend.realtime.publish import publish_batch
from tests.browser.conftest import WebProcess, off_loop
from tests.browser.data import Demo, asset_update, demo_priced, portfolio_update

from .test_dashboard import card, indicator, log_in, wait_until_subscribed

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
FX_MARKET = {  # symbol: (price, previous close), in the asset's currency
    "SAP.DE": ("200", "198"),
    "EURUSD=X": ("1.10", "1.10"),
    "VOD.L": ("72", "71"),
    "GBPUSD=X": ("1.25", "1.25"),
}
GOOD_CSV = (
    "date,type,symbol,quantity,price,fee,amount,ratio,currency,fx_rate,external_id\n"
    "2026-03-02,buy,VOD.L,1000,70,0,,,GBp,0.0125,csv-1\n"
    "2026-03-09,dividend,VOD.L,,,,450,,GBp,0.0126,csv-2\n"
)
BAD_CSV = (
    "date,type,symbol,quantity,price,fee,amount,ratio,currency,fx_rate,external_id\n"
    "2026-03-02,buy,VOD.L,1000,70,0,,,GBp,0.0125,bad-1\n"
    "2026-03-03,buy,VOD.L,-5,70,0,,,GBp,0.0125,bad-2\n"
    "2026-03-04,swap,VOD.L,1,70,0,,,GBp,0.0125,bad-3\n"
)


@pytest.fixture
def demo(web: WebProcess) -> Demo:
    demo = demo_priced()
    now = timezone.now()
    for symbol, (price, previous) in FX_MARKET.items():
        Quote.objects.filter(asset__symbol=symbol).update(
            price=Decimal(price), previous_close=Decimal(previous), quoted_at=now + timedelta(seconds=1)
        )
    return demo


def row(page: Page, portfolio_id: int, symbol: str) -> Locator:
    return card(page, portfolio_id).locator(f'.positions tr[data-symbol="{symbol}"]')


def ledger(page: Page, portfolio_id: int) -> Locator:
    panel = card(page, portfolio_id).locator("details.ledger")
    panel.locator("summary").click()
    expect(panel).to_have_attribute("data-loaded", "true")
    return panel


def upload(panel: Locator, name: str, text: str) -> None:
    panel.get_by_label("CSV file").set_input_files({"name": name, "mimeType": "text/csv", "buffer": text.encode()})
    panel.get_by_role("button", name="Import").click()


def ledger_size(portfolio_id: int) -> int:
    return Transaction.objects.filter(portfolio_id=portfolio_id).count()


def test_positions_show_their_currency_and_their_value_in_the_base_currency_live(demo: Demo, page: Page, shot):
    log_in(page)
    expect(indicator(page)).to_have_attribute("data-status", "connected")
    income = card(page, demo.income_id)
    expect(income.locator(".positions thead")).to_contain_text("Value (USD)")
    sap, vod = row(page, demo.income_id, "SAP.DE"), row(page, demo.income_id, "VOD.L")
    expect(sap.locator(".ccy")).to_have_text("EUR")
    expect(vod.locator(".ccy")).to_have_text("GBp")
    expect(row(page, demo.income_id, "KO").locator(".ccy")).to_have_text("USD")
    expect(sap.locator(".price")).to_have_text("200.00")  # the asset's currency
    expect(sap.locator(".value")).to_have_text("3,300.00")  # 15 x 200 EUR x 1.10
    expect(vod.locator(".value")).to_have_text("1,800.00")  # 2,000 x 72 p x 0.0125
    shot("currencies")

    # A live euro price: dashboard.js draws quantity x price, the ledger converts it.
    wait_until_subscribed(page, f"portfolio:{demo.income_id}", "asset:SAP.DE")
    off_loop(publish_batch, [asset_event(asset_update("SAP.DE", "210"))])
    expect(sap.locator(".price")).to_have_text("210.00")
    expect(sap.locator(".value")).to_have_text("3,465.00")  # 15 x 210 x 1.10
    expect(sap.locator(".day")).to_have_text("+16.50")  # 15 x (210 - 209) x 1.10


def _ledger_figures(portfolio_id: int, symbol: str) -> Decimal:
    """What the position's return adds to its value: realized gain and dividends less its cost."""
    position = Position.objects.get(portfolio_id=portfolio_id, asset__symbol=symbol)
    assert position.cost_basis is not None
    return position.realized_gain + position.dividends - position.cost_basis


def test_a_euro_row_takes_a_pushed_rate_and_values_the_next_euro_price_at_it_in_dollars(demo: Demo, page: Page, shot):
    log_in(page)
    expect(indicator(page)).to_have_attribute("data-status", "connected")
    wait_until_subscribed(page, f"portfolio:{demo.income_id}", "asset:SAP.DE")
    sap = row(page, demo.income_id, "SAP.DE")
    expect(sap.locator(".ccy")).to_have_text("EUR")
    expect(sap.locator(".price")).to_have_attribute("title", "in EUR")
    expect(sap.locator(".value")).to_have_text("3,300.00")  # 15 x 200 EUR x 1.10, on the first paint
    extra = off_loop(_ledger_figures, demo.income_id, "SAP.DE")

    # The pair moves to 1.20 and the euro price does not: the revaluation's push carries the
    # row's new dollar value, the price stays in euros.
    off_loop(
        publish_batch,
        [
            portfolio_event(
                portfolio_update(demo.income_id, "Income & Crypto", "50000", "SAP.DE", "15", "200", fx="1.20")
            )
        ],
    )
    expect(sap.locator(".value")).to_have_text(f"{15 * 200 * Decimal('1.20'):,.2f}")
    expect(sap.locator(".price")).to_have_text("200.00")

    # A euro price after it is valued at the new rate: quantity x price x fx, in dollars.
    off_loop(publish_batch, [asset_event(asset_update("SAP.DE", "210"))])
    value = 15 * Decimal(210) * Decimal("1.20")
    expect(sap.locator(".price")).to_have_text("210.00")
    expect(sap.locator(".value")).to_have_text(f"{value:,.2f}")
    expect(sap.locator(".day")).to_have_text(f"+{15 * (210 - 209) * Decimal('1.20'):,.2f}")
    expect(sap.locator(".return")).to_have_text(f"+{(value + extra).quantize(Decimal('0.01')):,.2f}")
    shot("euro-row-at-a-new-rate")


def test_the_ledger_panel_adds_refuses_imports_and_deletes(demo: Demo, page: Page, shot):
    log_in(page)
    expect(indicator(page)).to_have_attribute("data-status", "connected")
    panel = ledger(page, demo.growth_id)
    entries = panel.locator(".transactions tbody tr")
    expect(entries).to_have_count(8)
    expect(panel.locator(".tx-count")).to_have_text("8 transactions.")
    expect(entries.first).to_contain_text("dividend")  # newest first
    message = panel.locator(".tx-message")

    # A euro buy at the latest rate: the position appears, tagged and valued in dollars.
    panel.get_by_label("Symbol").fill("sap.de")
    panel.get_by_label("Quantity").fill("10")
    panel.get_by_label("Price").fill("190")
    panel.get_by_role("button", name="Add transaction").click()
    expect(message).to_have_text("Recorded: buy SAP.DE")
    expect(entries).to_have_count(9)
    sap = row(page, demo.growth_id, "SAP.DE")
    expect(sap.locator(".ccy")).to_have_text("EUR")
    expect(sap.locator(".value")).to_have_text("2,200.00")  # 10 x 200 EUR x 1.10
    shot("added-a-euro-buy")

    # Refused: more than held, then a missing field; nothing recorded.
    panel.get_by_label("Type").select_option("sell")
    panel.get_by_label("Symbol").fill("AAPL")
    panel.get_by_label("Quantity").fill("1000")
    panel.get_by_label("Price").fill("200")
    panel.get_by_role("button", name="Add transaction").click()
    expect(message).to_have_class(re.compile(r"\berror\b"))
    expect(message).to_contain_text(re.compile(r"^Not enough held: selling 1000\.0+ but 25\.0+ held"))
    expect(panel.get_by_label("Quantity")).to_have_value("1000")  # kept, to correct it
    panel.get_by_label("Quantity").fill("")
    panel.get_by_role("button", name="Add transaction").click()
    expect(message).to_have_text("quantity: required for a sell")
    assert off_loop(ledger_size, demo.growth_id) == 9
    expect(panel.get_by_label("Amount")).to_be_hidden()
    panel.get_by_label("Type").select_option("dividend")
    expect(panel.get_by_label("Amount")).to_be_visible()
    expect(panel.get_by_label("Quantity")).to_be_hidden()

    # A CSV with two bad lines imports nothing and lists them by line.
    upload(panel, "bad.csv", BAD_CSV)
    result = panel.locator(".csv-result")
    expect(result.locator(".csv-summary")).to_have_text("Nothing was imported: 2 errors.")
    errors = result.locator(".csv-errors li")
    expect(errors).to_have_count(2)
    expect(errors.nth(0)).to_contain_text(re.compile(r"^Line 3: .*quantity"))
    expect(errors.nth(1)).to_contain_text(re.compile(r"^Line 4: .*type"))
    assert off_loop(ledger_size, demo.growth_id) == 9
    shot("import-errors-by-line")

    # A good one: imported, the pence holding appears; the same file again is all duplicates.
    upload(panel, "good.csv", GOOD_CSV)
    expect(result.locator(".csv-summary")).to_have_text("Imported 2 transactions.")
    expect(result.locator(".csv-errors li")).to_have_count(0)
    expect(entries).to_have_count(11)
    vod = row(page, demo.growth_id, "VOD.L")
    expect(vod.locator(".ccy")).to_have_text("GBp")
    expect(vod.locator(".value")).to_have_text("900.00")  # 1,000 x 72 p x 0.0125
    upload(panel, "good.csv", GOOD_CSV)
    expect(result.locator(".csv-summary")).to_have_text("Imported 0 transactions, 2 already recorded.")
    shot("imported")

    # Deleting the euro buy takes its position away.
    panel.get_by_role("button", name=re.compile(r"^Delete buy SAP\.DE")).click()
    expect(message).to_have_text("Deleted.")
    expect(entries).to_have_count(10)
    expect(sap).to_have_count(0)
    assert off_loop(ledger_size, demo.growth_id) == 10
    shot("deleted")


def test_the_panels_page_of_the_ledger_is_the_owners_only_newest_first_and_bounded():
    demo = demo_priced()  # no browser: the panel's endpoint alone
    client = Client()
    client.force_login(User.objects.get(pk=demo.user_id))
    page = client.get(f"/dashboard/portfolios/{demo.income_id}/transactions/?limit=2").json()
    assert page["count"] == 11
    assert [(t["type"], t["symbol"], t["executed_at"]) for t in page["transactions"]] == [
        ("fee", None, "2025-12-31T15:00:00Z"),
        ("dividend", "VOD.L", "2025-08-01T15:00:00Z"),
    ]
    assert page["transactions"][1]["amount"] == 4500.0  # as recorded, in pence
    assert client.get(f"/dashboard/portfolios/{demo.income_id}/transactions/?limit=0").status_code == 400
    assert client.get(f"/dashboard/portfolios/{demo.income_id}/transactions/?limit=501").status_code == 400
    client.force_login(User.objects.create_user("eve"))
    assert client.get(f"/dashboard/portfolios/{demo.income_id}/transactions/").status_code == 404
