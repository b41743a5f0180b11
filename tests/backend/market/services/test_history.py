"""Loading daily history: Yahoo's v8 chart over HTTP (FakeUpstream speaks its wire format,
nulls included), which symbols `--historical` covers by default, which a new holding needs,
and the `history_loaded` signal once the new bars commit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from backend.dashboard.models import WatchlistItem
from backend.market.models import Asset, PriceHistory
from backend.market.services.history import (
    history_backfill_candidates,
    history_load,
    history_symbols,
    parse_yahoo_chart,
    simulated_close_times,
)
from backend.market.services.manager import data_source_manager
from backend.market.signals import history_loaded
from backend.portfolios.models import Portfolio, Position
from tests.fakes.upstream import FakeUpstream, fake_upstream
from tests.fakes.upstream_wire import yahoo_chart

pytestmark = pytest.mark.django_db
D = Decimal
NOW = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)  # a Friday, during the New York session
DAY = 86400
FIRST = int(datetime(2026, 11, 30, tzinfo=UTC).timestamp())  # Monday


@pytest.fixture
def yahoo(redis_client) -> Iterator[FakeUpstream]:
    redis_client.flushdb()
    with fake_upstream() as server:
        env = {k: v for k, v in server.env(("yahoo",)).items() if k != "MARKET_DATA_SOURCES"}
        with override_settings(MARKET_DATA_SOURCES=["yahoo"], **env):
            data_source_manager.cache_clear()
            yield server
    data_source_manager.cache_clear()


@pytest.fixture
def committed(django_capture_on_commit_callbacks) -> Callable[..., Any]:
    """Call a service and run what it left for after commit, as a committed request would."""

    def call(service: Callable[..., Any], **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return service(**kwargs)

    return call


@pytest.fixture
def loaded_signals() -> Iterator[list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    def record(**kwargs: Any) -> None:
        sent.append({"symbols": kwargs["symbols"], "since": kwargs["since"]})

    history_loaded.connect(record, dispatch_uid="test-history-loaded")
    yield sent
    history_loaded.disconnect(dispatch_uid="test-history-loaded")


def hold(symbol: str, *, base: str = "USD", quantity: str = "1", owner: str = "ann") -> Asset:
    user, _ = User.objects.get_or_create(username=owner)
    portfolio, _ = Portfolio.objects.get_or_create(owner=user, name=f"Main {base}", defaults={"base_currency": base})
    asset, _ = Asset.objects.get_or_create(symbol=symbol)
    Position.objects.create(portfolio=portfolio, asset=asset, quantity=D(quantity), average_cost=D(1))
    return asset


def bars(symbol: str) -> list[tuple[datetime, Decimal, int | None]]:
    rows = PriceHistory.objects.filter(asset__symbol=symbol).order_by("quoted_at")
    return [(r.quoted_at, r.price, r.volume) for r in rows]


def close(day: int) -> datetime:
    """The close of the fake's session `day` days after FIRST: 21:00 UTC."""
    return datetime.fromtimestamp(FIRST + day * DAY, tz=UTC).replace(hour=21)


def test_chart_bars_are_stamped_at_their_sessions_close_skipping_nulls_and_the_open_session():
    body = yahoo_chart(
        "AAPL",
        [
            (FIRST + n * DAY + 52200, c, v)
            for n, (c, v) in enumerate([(267.44, 4e7), (None, None), (-1, 5), (271.5, 5e7)])
        ],
        now=int(NOW.timestamp()),
    )
    assert parse_yahoo_chart(body, now=close(3)) == [
        (close(0), D("267.44"), 40_000_000),
        (close(3), D("271.5"), 50_000_000),
    ]
    # Before the last session closed, its "close" is only the latest price: left out.
    assert [b[0] for b in parse_yahoo_chart(body, now=close(3) - timedelta(minutes=1))] == [close(0)]


def test_a_chart_answer_that_is_not_a_chart_gives_no_bars():
    assert parse_yahoo_chart({"chart": {"result": None, "error": {"code": "Not Found"}}}) == []
    assert parse_yahoo_chart({"chart": {"result": [{"meta": {}}]}}) == []  # no trading in the range
    assert parse_yahoo_chart(["not", "a", "chart"]) == []


def test_yahoo_history_is_loaded_over_http_once_and_announced_from_its_earliest_new_day(
    yahoo, loaded_signals, committed
):
    Asset.objects.create(symbol="AAPL")
    Asset.objects.create(symbol="^GSPC")
    yahoo.set_chart("AAPL", FIRST, [190.5, None, 192.25, 191.0, 193.75])  # Friday's session still open
    yahoo.set_chart("^GSPC", FIRST, [6800.0, 6810.5, 6795.25, 6820.0, 6830.0])
    first = committed(history_load, symbols=["AAPL", "^GSPC", "NOASSET"], days=10, now=NOW)
    assert bars("AAPL") == [
        (close(0), D("190.5"), 1_000_000),
        (close(2), D("192.25"), 1_000_000),
        (close(3), D("191"), 1_000_000),
    ]
    assert [b[1] for b in bars("^GSPC")] == [D("6800"), D("6810.5"), D("6795.25"), D("6820")]
    assert (first.inserted, first.symbols, first.since, first.failed) == (7, ["AAPL", "^GSPC"], close(0).date(), [])
    assert {r.source for r in PriceHistory.objects.all()} == {"yahoo"}
    assert sorted(r.symbols[0] for r in yahoo.requests["yahoo_chart"]) == ["AAPL", "^GSPC"]  # NOASSET: not asked
    assert loaded_signals == [{"symbols": ["AAPL", "^GSPC"], "since": close(0).date()}]

    yahoo.set_chart("AAPL", FIRST - 2 * DAY, [188.0, 189.0, 190.5, None, 192.25, 191.0, 193.75])
    again = committed(history_load, symbols=["AAPL", "^GSPC"], days=10, now=NOW)
    assert (again.inserted, again.symbols, again.since) == (2, ["AAPL"], (close(0) - timedelta(days=2)).date())
    assert loaded_signals[-1] == {"symbols": ["AAPL"], "since": date(2026, 11, 28)}
    assert committed(history_load, symbols=["AAPL", "^GSPC"], days=10, now=NOW).inserted == 0
    assert len(loaded_signals) == 2  # nothing new: nothing announced


def test_a_symbol_yahoo_has_no_chart_of_is_empty_and_a_failing_yahoo_is_worth_a_retry(yahoo, loaded_signals, committed):
    Asset.objects.create(symbol="NOPE")
    Asset.objects.create(symbol="AAPL")
    assert history_load(symbols=["NOPE"], days=10, now=NOW).failed == []
    yahoo.set_chart("AAPL", FIRST, [190.5])
    yahoo.fail("yahoo", 502)
    failed = committed(history_load, symbols=["AAPL"], days=10, now=NOW)
    assert (failed.inserted, failed.failed) == (0, ["AAPL"])
    assert PriceHistory.objects.count() == 0
    assert loaded_signals == []


def test_yahoo_is_asked_for_the_days_wanted_by_period(yahoo):
    Asset.objects.create(symbol="AAPL")
    history_load(symbols=["AAPL"], days=30, now=NOW)
    (request,) = yahoo.requests["yahoo_chart"]
    assert request.params["interval"] == "1d"
    assert int(request.params["period2"]) - int(request.params["period1"]) == 30 * DAY


def test_historical_covers_held_and_watched_symbols_and_the_pairs_held_ones_need():
    hold("AAPL")
    hold("SAP.DE")  # EUR in a USD portfolio: EURUSD=X
    hold("SOLD", quantity="0")
    Asset.objects.create(symbol="EURUSD=X")
    Asset.objects.create(symbol="IDLE")
    watched = Asset.objects.create(symbol="META")
    WatchlistItem.objects.create(user=User.objects.create_user("bob"), asset=watched)
    Asset.objects.create(symbol="GONE", is_active=False)
    hold("GONE")
    assert history_symbols() == ["AAPL", "EURUSD=X", "META", "SAP.DE"]


def test_a_new_holding_needs_its_history_and_its_pair_unless_stored_history_reaches_back():
    hold("SAP.DE", base="USD")
    hold("VOD.L", base="USD")
    eur = Asset.objects.create(symbol="EURUSD=X")
    Asset.objects.create(symbol="GBPUSD=X")
    assert history_backfill_candidates(symbols=["SAP.DE", "VOD.L"], days=365, now=NOW) == [
        "EURUSD=X",
        "GBPUSD=X",
        "SAP.DE",
        "VOD.L",
    ]
    # A quote of today is no history; a close from the window's first week is.
    PriceHistory.objects.create(asset=eur, quoted_at=NOW - timedelta(hours=1), price=D("1.1"), source="t")
    assert "EURUSD=X" in history_backfill_candidates(symbols=["SAP.DE"], days=365, now=NOW)
    PriceHistory.objects.create(asset=eur, quoted_at=NOW - timedelta(days=360), price=D("1.1"), source="t")
    assert history_backfill_candidates(symbols=["SAP.DE"], days=365, now=NOW) == ["SAP.DE"]


def test_a_second_simulated_load_inserts_and_announces_nothing(settings, loaded_signals, committed):
    settings.MARKET_DATA_SOURCES = ["simulated"]
    data_source_manager.cache_clear()
    for symbol in ("AAPL", "KO"):
        Asset.objects.create(symbol=symbol)
    first = committed(history_load, symbols=["AAPL", "KO"], days=30, now=NOW)
    PriceHistory.objects.filter(asset__symbol="KO", quoted_at__lt=NOW - timedelta(days=20)).delete()
    gap = committed(history_load, symbols=["AAPL", "KO"], days=30, now=NOW)
    assert committed(history_load, symbols=["AAPL", "KO"], days=30, now=NOW).inserted == 0
    data_source_manager.cache_clear()
    assert (first.inserted, gap.inserted, gap.symbols) == (60, 10, ["KO"])
    assert [s["symbols"] for s in loaded_signals] == [["AAPL", "KO"], ["KO"]]
    assert loaded_signals[1]["since"] == simulated_close_times(days=30, now=NOW)[-1].date() == date(2026, 11, 4)
