"""The performance panel of each portfolio card in Chromium, against a real Daphne, the real
performance endpoint, database and Redis: it shows the range's returns and gains in the
portfolio's currency, draws the value with the benchmark rebased onto it, switches ranges and
benchmarks, says when a benchmark is refused, and follows pushed portfolio values at once
while fetching the range again at most once per refresh window."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from backend.market.models import Asset, Quote
from backend.portfolios.selectors import portfolio_snapshot
from backend.realtime.events import portfolio_event
from backend.realtime.payloads import PortfolioUpdate
from backend.realtime.publish import publish_batch
from tests.browser.conftest import WebProcess, off_loop
from tests.browser.data import DEMO_PASSWORD, PERF_USER, PerformanceSeed, perf_close, performance_seeded

from .test_dashboard import card, indicator, log_in, wait_until_subscribed

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
REFRESH_MS = 5000  # performance.js: at most one fetch of a panel's range per this many ms
PAD = 6  # charts.js: a value chart's vertical padding, in viewBox units


@pytest.fixture
def seed(web: WebProcess) -> PerformanceSeed:
    return performance_seeded()


def panel(page: Page, portfolio_id: int) -> Locator:
    return card(page, portfolio_id).locator("details.performance")


def is_performance_of(portfolio_id: int):
    return lambda response: f"/api/portfolios/{portfolio_id}/performance/" in response.url


def log_in_and_read_first_answer(page: Page, portfolio_id: int) -> Any:
    """Logs in; the panel's first answer (a Playwright Response)."""
    with page.expect_response(is_performance_of(portfolio_id)) as answer:
        log_in(page, PERF_USER, DEMO_PASSWORD)
    return answer.value


def money(value: float) -> str:
    """As the panel writes an amount of US dollars (Intl, en-US), sign first when signed."""
    return f"${value:,.2f}"


def signed_money(value: float) -> str:
    return f"{'+' if value > 0 else '−' if value < 0 else ''}{money(abs(value))}"


def signed_percent(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{'+' if value > 0 else '−' if value < 0 else ''}{abs(value):,.2f} %"


def points(polyline: Locator) -> list[tuple[float, float]]:
    text = polyline.get_attribute("points") or ""
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in text.split())]


def performance_fetch_starts(page: Page, portfolio_id: int) -> list[float]:
    """When the page started each performance request of the portfolio (ms, the page's clock)."""
    return page.evaluate(
        "id => performance.getEntriesByType('resource')"
        ".filter(e => e.name.includes(`/api/portfolios/${id}/performance/`)).map(e => e.startTime)",
        portfolio_id,
    )


def fetched_count(page: Page, portfolio_id: int, count: int) -> None:
    """Wait until the page has completed `count` performance requests of the portfolio."""
    page.wait_for_function(
        "([id, n]) => performance.getEntriesByType('resource')"
        ".filter(e => e.name.includes(`/api/portfolios/${id}/performance/`)).length >= n",
        arg=[portfolio_id, count],
        timeout=REFRESH_MS + 5000,
    )


def test_the_panel_shows_the_ranges_figures_and_the_benchmark_rebased_to_the_portfolio(
    seed: PerformanceSeed, page: Page, shot
):
    answer = log_in_and_read_first_answer(page, seed.portfolio_id)
    assert answer.ok
    body = answer.json()
    perf = panel(page, seed.portfolio_id)
    expect(perf).to_have_attribute("data-loaded", "true")
    assert body["range"] == "1y"
    assert body["currency"] == "USD"
    expect(perf.get_by_role("button", name="1 year")).to_have_attribute("aria-pressed", "true")

    # Every figure as the endpoint gave it, in the portfolio's currency.
    expect(perf.locator(".perf-twr")).to_have_text(signed_percent(body["twr_percent"]))
    expect(perf.locator(".perf-irr")).to_have_text(signed_percent(body["irr_percent"]))
    expect(perf.locator(".perf-realized")).to_have_text(signed_money(body["realized_gain"]))
    expect(perf.locator(".perf-unrealized")).to_have_text(signed_money(body["unrealized_gain"]))
    expect(perf.locator(".perf-dividends")).to_have_text(money(body["dividends"]))
    expect(perf.locator(".perf-fees")).to_have_text(money(body["fees"]))
    expect(perf.locator(".perf-end")).to_have_text(money(body["end_value"]))
    bench = body["benchmark"]
    assert bench["symbol"] == "^GSPC"  # the default benchmark, tracked here
    expect(perf.locator(".perf-bench")).to_have_text(f"^GSPC {signed_percent(bench['return_percent'])}")
    # The ledger's own figures, worked out here: the sell's gain over the average cost, the dividend.
    average_cost = (10 * perf_close("AAPL", 30) + 1) / 10
    realized = (2 * perf_close("AAPL", 5) - 1) - 2 * average_cost
    assert body["realized_gain"] == float(realized.quantize(Decimal("0.01")))
    assert body["dividends"] == 4.40
    shot("one-year")

    # The value line, and the benchmark on the same axes, starting where the portfolio starts.
    line = points(perf.locator(".perf-chart polyline.line"))
    overlay = points(perf.locator(".perf-chart polyline.overlay"))
    series = body["series"]
    assert len(line) == len(series)
    assert len(overlay) == len(bench["series"])
    # y is linear in the value: read the scale off the portfolio's line ...
    low = min(range(len(series)), key=lambda i: series[i]["value"])
    high = max(range(len(series)), key=lambda i: series[i]["value"])
    per_unit = (line[low][1] - line[high][1]) / (series[high]["value"] - series[low]["value"])

    def y_of(value: float) -> float:
        return line[low][1] - (value - series[low]["value"]) * per_unit

    # ... and every benchmark close, rebased so that on the portfolio's first valued day (the
    # range starts before the first buy: its start value is 0) it is worth what the portfolio
    # was, must sit where that value would.
    assert body["start_value"] == 0
    first = next(p for p in series if p["value"] > 0)
    base = next(b["value"] for b in reversed(bench["series"]) if b["date"] <= first["date"])
    for (_, y), close in zip(overlay, bench["series"], strict=True):
        assert y == pytest.approx(y_of(close["value"] / base * first["value"]), abs=0.3)
    first_x = line[[p["date"] for p in series].index(first["date"])][0]
    assert (first_x, y_of(first["value"])) in [(x, pytest.approx(y, abs=0.3)) for x, y in overlay]
    assert overlay[0][0] == 0.0
    assert line[-1][0] == 600.0

    # Another range: fetched, drawn, pressed.
    with page.expect_response(is_performance_of(seed.portfolio_id)) as answer:
        perf.get_by_role("button", name="1 month").click()
    month = answer.value.json()
    assert "range=1m" in answer.value.url
    assert month["range"] == "1m"
    expect(perf).to_have_attribute("data-range", "1m")
    expect(perf.get_by_role("button", name="1 month")).to_have_attribute("aria-pressed", "true")
    expect(perf.get_by_role("button", name="1 year")).to_have_attribute("aria-pressed", "false")
    expect(perf.locator(".perf-twr")).to_have_text(signed_percent(month["twr_percent"]))
    expect(perf.locator(".perf-chart polyline.line")).to_have_count(1)

    # No benchmark: asked without one, the dashed line and its figure go.
    with page.expect_response(is_performance_of(seed.portfolio_id)) as answer:
        perf.get_by_label("Benchmark").select_option("")
    assert "benchmark" not in answer.value.url
    assert "benchmark" not in answer.value.json()
    expect(perf.locator(".perf-chart polyline.overlay")).to_have_count(0)
    expect(perf.locator(".perf-bench")).to_have_text("—")
    expect(perf.locator(".perf-legend-bench")).to_be_hidden()
    shot("one-month-no-benchmark")


def test_an_untracked_default_benchmark_is_left_out_and_a_refused_pick_says_why(
    seed: PerformanceSeed, page: Page, shot
):
    off_loop(lambda: Asset.objects.filter(symbol="^GSPC").update(tracking_status=Asset.TrackingStatus.PENDING))
    refused = log_in_and_read_first_answer(page, seed.portfolio_id)
    assert refused.status == 400
    assert "benchmark=%5EGSPC" in refused.url
    perf = panel(page, seed.portfolio_id)
    message = perf.locator(".perf-message")
    # ^GSPC was refused: the panel asked again without a benchmark and says so, not as an error.
    expect(message).to_have_text("No benchmark: ^GSPC is not tracked.")
    expect(message).not_to_have_class(re.compile(r"\berror\b"))
    expect(perf.get_by_label("Benchmark")).to_have_value("")
    expect(perf.locator(".perf-bench")).to_have_text("—")
    expect(perf.locator(".perf-chart polyline.line")).to_have_count(1)

    # A benchmark the user picks and the server refuses: its reason, as an error.
    with page.expect_response(lambda r: is_performance_of(seed.portfolio_id)(r) and "benchmark=" in r.url) as answer:
        perf.get_by_label("Benchmark").select_option("^DJI")
    assert answer.value.status == 400
    reason = answer.value.json()["message"]
    expect(message).to_have_text(f"Benchmark ^DJI refused: {reason}")
    expect(message).to_have_class(re.compile(r"\berror\b"))
    expect(perf.get_by_label("Benchmark")).to_have_value("")
    shot("benchmark-refused")

    # A portfolio with nothing in it has no money-weighted return: n/a, not a number.
    empty = panel(page, seed.empty_id)
    expect(empty).to_have_attribute("data-loaded", "true")
    expect(empty.locator(".perf-irr")).to_have_text("n/a")
    expect(empty.locator(".perf-end")).to_have_text(money(0))
    expect(empty.locator(".perf-chart .empty")).to_have_count(1)


def _price_raised(symbol: str, factor: int, portfolio_id: int, user_id: int) -> PortfolioUpdate:
    """The symbol's quote raised `factor` times, and the portfolio's valuation at it."""
    quote = Quote.objects.get(asset__symbol=symbol)
    Quote.objects.filter(pk=quote.pk).update(price=quote.price * factor)
    snapshot = portfolio_snapshot(portfolio_id=portfolio_id, user_id=user_id)
    assert snapshot is not None
    snapshot["value_changed"] = True
    return snapshot


def _valued_at(update: PortfolioUpdate, total: Decimal) -> PortfolioUpdate:
    copy = update.copy()
    copy["total_value"] = total
    return copy


def test_pushed_values_move_the_end_and_last_point_at_once_and_refetch_at_most_once_per_window(
    seed: PerformanceSeed, page: Page, shot
):
    answers: list[Any] = []
    page.on("response", lambda r: answers.append(r) if is_performance_of(seed.portfolio_id)(r) else None)
    assert log_in_and_read_first_answer(page, seed.portfolio_id).ok
    expect(indicator(page)).to_have_attribute("data-status", "connected")
    wait_until_subscribed(page, f"portfolio:{seed.portfolio_id}")
    perf = panel(page, seed.portfolio_id)
    expect(perf).to_have_attribute("data-loaded", "true")
    assert len(performance_fetch_starts(page, seed.portfolio_id)) == 1

    # A revaluation at a tripled AAPL price, pushed five times in one batch (as a burst of
    # rounds would be): the end value and the chart's last point follow the last one at once.
    update = off_loop(_price_raised, "AAPL", 3, seed.portfolio_id, seed.user_id)
    total = float(update["total_value"])
    burst = [_valued_at(update, update["total_value"] - 40 + 10 * k) for k in range(4)] + [update]
    off_loop(publish_batch, [portfolio_event(u) for u in burst])
    expect(perf.locator(".perf-end")).to_have_text(money(total))
    last = points(perf.locator(".perf-chart polyline.line"))[-1]
    assert last == (600.0, float(PAD))  # the highest value of the range, today

    # One fetch for the whole burst, and it agrees with what was pushed.
    fetched_count(page, seed.portfolio_id, 2)
    expect(perf).not_to_have_attribute("data-loading", "true")
    assert len(answers) == 2
    assert answers[1].json()["end_value"] == pytest.approx(total, abs=0.005)
    expect(perf.locator(".perf-end")).to_have_text(money(total))
    shot("after-burst")

    # More pushes right after that fetch wait out the window: the next fetch starts no sooner
    # than REFRESH_MS after the previous one, and the three pushes share it.
    off_loop(publish_batch, [portfolio_event(update)])
    off_loop(publish_batch, [portfolio_event(_valued_at(update, update["total_value"] + 1))])
    off_loop(publish_batch, [portfolio_event(update)])
    fetched_count(page, seed.portfolio_id, 3)
    page.wait_for_timeout(REFRESH_MS + 1000)
    starts = performance_fetch_starts(page, seed.portfolio_id)
    assert len(starts) == 3
    assert starts[2] - starts[1] >= REFRESH_MS - 50
