"""The stream runner against a fake of Finnhub's socket (tests/fakes/stream.py): following the
tracked symbols, conflation and flushing, ordering against polled quotes, reconnecting, bad
frames, state and a clean stop. The runner runs on its own event loop in a thread, with the
real database and Redis; what a flush hands on is collected instead of published."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.core.metrics import counters
from backend.market.models import Asset, PriceHistory, Quote
from backend.market.services.ingest import quotes_store
from backend.market.services.refresh import BatchResult
from backend.market.services.sources.base import QuoteData
from backend.market.services.stream.finnhub import FinnhubStream
from backend.market.services.stream.state import stream_status
from tasks.stream import FollowUp, StreamRunner, backoff_delay, followed_pick
from tests.fakes.stream import FakeStream, fake_stream

pytestmark = pytest.mark.django_db(transaction=True)


class Harness:
    """A StreamRunner on the fake, its tracked symbols set by the test."""

    def __init__(self, fake: FakeStream, tracked: list[str], **options: object) -> None:
        self.tracked = list(tracked)
        self.results: list[BatchResult] = []
        settings = {"flush_ms": 50, "max_symbols": 50, "symbols_every": 0.1, "state_every": 0.1,
                    "backoff": (0.05, 0.2), **options}  # fmt: skip
        self.runner = StreamRunner(
            FinnhubStream(url=fake.url, api_key="test-key"),
            tracked=lambda: list(self.tracked),
            complete=self.results.append,
            **settings,  # type: ignore[arg-type]
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.runner.run(),), daemon=True)

    def __enter__(self) -> Harness:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.runner.request_stop)
            self.thread.join(15)
            assert not self.thread.is_alive(), "the runner did not stop"

    def stored(self) -> dict[str, str]:
        """The stored price of every symbol a flush stored."""
        return {s: price(s) for r in self.results for s in r.stored}


def price(symbol: str) -> str:
    return f"{Quote.objects.get(asset__symbol=symbol).price.normalize():f}"


def wait(predicate, timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        time.sleep(0.02)


@pytest.fixture
def fake() -> Iterator[FakeStream]:
    with fake_stream() as server:
        yield server


@pytest.fixture
def assets() -> list[str]:
    symbols = ["AAA", "BBB", "CCC", "DDD", "^GSPC"]
    Asset.objects.bulk_create([Asset(symbol=s, tracking_status="tracked") for s in symbols])
    return symbols


def test_backoff_is_exponential_jittered_and_capped():
    assert all(0.25 <= backoff_delay(0, base=0.5, cap=30) <= 0.5 for _ in range(50))
    assert all(2 <= backoff_delay(3, base=0.5, cap=30) <= 4 for _ in range(50))
    assert all(15 <= backoff_delay(12, base=0.5, cap=30) <= 30 for _ in range(50))
    assert len({backoff_delay(4) for _ in range(20)}) > 1


def test_followed_symbols_keep_the_current_ones_and_fill_up_to_the_limit():
    def supports(symbol: str) -> bool:
        return not symbol.startswith("^")

    tracked = ["^GSPC", "AAA", "BBB", "CCC", "DDD"]
    assert followed_pick(current=[], tracked=tracked, limit=2, supports=supports) == {"AAA", "BBB"}
    assert followed_pick(current=["DDD", "GONE"], tracked=tracked, limit=2, supports=supports) == {"DDD", "AAA"}
    assert followed_pick(current=[], tracked=tracked, limit=0, supports=supports) == set()


def test_the_socket_follows_the_tracked_symbols_within_the_maximum(fake, assets):
    with Harness(fake, ["^GSPC", "AAA", "BBB", "CCC"], max_symbols=2) as h:
        fake.wait_for(lambda: fake.subscriptions == {"AAA", "BBB"}, what="first subscriptions")
        assert fake.clients[0].token == "test-key"
        h.tracked = ["BBB", "CCC", "DDD"]  # AAA no longer tracked; CCC fills its place
        fake.wait_for(lambda: fake.subscriptions == {"BBB", "CCC"}, what="resubscription")
        frames = fake.clients[0].frames
        assert {"type": "unsubscribe", "symbol": "AAA"} in frames
        assert [f["symbol"] for f in frames if f["type"] == "subscribe"] == ["AAA", "BBB", "CCC"]
        fake.trade("AAA", 9.0)  # in flight after the unsubscribe: not stored
        fake.trade("BBB", 10.5)
        wait(lambda: h.stored() == {"BBB": "10.5"}, what="BBB stored")
    assert not Quote.objects.filter(asset__symbol="AAA").exists()


def test_trades_are_conflated_per_symbol_and_flushed_as_one_batch(fake, assets):
    with Harness(fake, ["AAA", "BBB"], flush_ms=400) as h:
        fake.wait_for(lambda: fake.subscriptions == {"AAA", "BBB"})
        t0 = fake.trade("CCC", 1.0) - 10_000  # not followed: ignored
        fake.trades([{"s": "AAA", "p": p, "t": t0 + i, "v": 1} for i, p in enumerate((1.0, 2.0, 3.0))])
        wait(lambda: len(h.results) == 1, what="the first flush")  # a quiet stream flushes at once
        assert h.stored() == {"AAA": "3"}
        for i, (symbol, p) in enumerate([("AAA", 4.0), ("BBB", 7.0), ("AAA", 5.0), ("BBB", 8.0), ("AAA", 6.0)]):
            fake.trades([{"s": symbol, "p": p, "t": t0 + 10 + i, "v": 1}])
        wait(lambda: len(h.results) == 2, what="the second flush")
        second = h.results[1]
        assert sorted(second.stored) == ["AAA", "BBB"]  # one batch for both symbols
        assert {e["data"]["symbol"]: e["data"]["price"] for e in second.events} == {"AAA": 6.0, "BBB": 8.0}
        assert h.runner.totals["trades"] == 8
    assert PriceHistory.objects.filter(asset__symbol="AAA").count() == 2  # 3.0 and 6.0: 1, 2, 4, 5 conflated
    assert len(h.results) == 2


def test_a_crypto_pair_is_followed_under_finnhubs_exchange_symbol_and_stored_under_ours(fake, assets):
    Asset.objects.create(symbol="BTC-USD", tracking_status="tracked", asset_type="crypto")
    with Harness(fake, ["AAA", "BTC-USD"]) as h:
        fake.wait_for(lambda: fake.subscriptions == {"AAA", "BINANCE:BTCUSDT"}, what="the exchange symbol followed")
        fake.trades([{"s": "BINANCE:BTCUSDT", "p": 97012.5, "t": int(time.time() * 1000), "v": 1}])
        wait(lambda: h.stored() == {"BTC-USD": "97012.5"}, what="BTC-USD stored")
        assert Quote.objects.get(asset__symbol="BTC-USD").source == "finnhub_ws"


def test_streamed_and_polled_quotes_keep_their_order(fake, assets):
    now = datetime.now(UTC)
    quotes_store(quotes=[QuoteData(symbol="AAA", price=Decimal(50), source="yahoo", quoted_at=now)])
    with Harness(fake, ["AAA", "BBB"]) as h:
        fake.wait_for(lambda: fake.subscriptions == {"AAA", "BBB"})
        fake.trade("AAA", 40.0, at_ms=int((now - timedelta(seconds=5)).timestamp() * 1000))  # older: dropped
        wait(lambda: len(h.results) == 1)
        assert (h.results[0].stale, price("AAA")) == (["AAA"], "50")
        fake.trade("AAA", 51.0, at_ms=int((now + timedelta(seconds=1)).timestamp() * 1000))
        wait(lambda: price("AAA") == "51")
    # A poll behind the trade leaves the streamed price.
    result = quotes_store(
        quotes=[QuoteData(symbol="AAA", price=Decimal(49), source="yahoo", quoted_at=now, previous_close=Decimal(48))]
    )
    assert result.stored == []
    quote = Quote.objects.get(asset__symbol="AAA")
    assert (quote.price, quote.source, quote.previous_close) == (Decimal(51), "finnhub_ws", Decimal(48))


def test_it_reconnects_after_the_fake_drops_every_connection_and_resubscribes(fake, assets):
    with Harness(fake, ["AAA", "BBB"]) as h:
        fake.wait_for(lambda: fake.subscriptions == {"AAA", "BBB"})
        fake.drop_on_connect = True
        fake.drop_all()
        fake.wait_for(lambda: len(fake.clients) >= 4, what="three dropped reconnects")
        fake.drop_on_connect = False
        fake.wait_for(lambda: len(fake.live) == 1 and fake.live[0].subscriptions == {"AAA", "BBB"}, what="resubscribe")
        assert all(c.token == "test-key" for c in fake.clients)
        fake.trade("BBB", 12.25)
        wait(lambda: h.stored().get("BBB") == "12.25", what="a trade after reconnecting")
        assert h.runner.totals["reconnects"] >= 3


def test_bad_frames_are_logged_and_skipped_without_stopping_the_stream(fake, assets, caplog):
    with caplog.at_level(logging.WARNING), Harness(fake, ["AAA"]) as h:
        fake.wait_for(lambda: fake.subscriptions == {"AAA"})
        fake.send_raw("this is not json")
        fake.send_raw('{"type":"trade","data":[{"s":"AAA","t":1700000000000}]}')  # no price
        fake.send_raw('{"type":"trade","data":[{"s":"AAA","p":NaN,"t":1700000000000}]}')
        fake.send_raw('{"type":"trade","data":[{"s":"AAA","p":0,"t":1700000000000}]}')
        fake.ping()
        fake.error("Subscribing to too many symbols")
        fake.trade("AAA", 3.5)
        wait(lambda: h.stored() == {"AAA": "3.5"}, what="the good trade")
        assert (h.runner.totals["bad_frames"], len(fake.clients)) == (4, 1)  # same connection throughout
    assert "frame is not JSON" in caplog.text
    assert "Subscribing to too many symbols" in caplog.text
    assert len(h.results) == 1


def test_state_shows_connection_symbols_and_trade_ages_and_metrics_count(fake, assets, settings):
    settings.MARKET_STREAM_SOURCE = "finnhub"
    with Harness(fake, ["AAA", "BBB"]) as h:
        fake.wait_for(lambda: fake.subscriptions == {"AAA", "BBB"})
        fake.trade("AAA", 2.0)
        wait(lambda: h.stored() == {"AAA": "2"})
        wait(lambda: stream_status().get("symbols", {}).get("AAA", {}).get("last_trade_at") is not None)
        state = stream_status()
        assert (state["enabled"], state["running"], state["connected"]) == (True, True, True)
        assert (state["source"], state["symbols_followed"], state["url"]) == ("finnhub", 2, fake.url)
        assert state["symbols"]["AAA"]["last_trade_age_seconds"] < 5
        assert state["symbols"]["BBB"]["last_trade_at"] is None
        wait(lambda: stream_status()["flush_times_ms"]["flush_p50"] is not None, what="the flush's duration")
        times = stream_status()["flush_times_ms"]
        assert 0 < times["store_p50"] <= times["flush_p50"] <= times["flush_p99"]
        wait(lambda: {n for n, _, _ in counters()} >= {"stream_trades", "stream_flushes"})
        web = Client()
        web.force_login(User.objects.create_user("ops", password="ops-pass-123", is_staff=True))
        metrics = web.get("/metrics").content.decode()
        assert "tickerflow_stream_connected 1.0" in metrics
        assert "tickerflow_stream_symbols_followed 2.0" in metrics
        assert "tickerflow_stream_trades_total" in metrics
        assert web.get("/api/realtime/status/").json()["stream"]["connected"] is True
    assert stream_status()["running"] is False  # cleared on a clean stop
    totals = {name: value for name, labels, value in counters() if name.startswith("stream_")}
    assert min(totals["stream_trades"], totals["stream_flushes"]) >= 1


def test_follow_ups_run_off_the_flush_thread_and_merge_while_one_is_running():
    started, release = threading.Event(), threading.Event()
    seen: list[tuple[list[str], list[int], str]] = []

    def slow(follow_up: FollowUp) -> None:
        seen.append((follow_up.changed, follow_up.fired, threading.current_thread().name))
        started.set()
        release.wait(10)

    runner = StreamRunner(FinnhubStream(url="ws://127.0.0.1:9", api_key="k"), follow_up=slow, tracked=list)
    runner._follow_up_add(FollowUp(changed=["AAA"], fired=[1]))
    assert started.wait(10)
    runner._follow_up_add(FollowUp(changed=["BBB", "AAA"], fired=[2]))
    runner._follow_up_add(FollowUp(changed=["CCC", "BBB"], fired=[]))
    release.set()
    runner._after.shutdown(wait=True)
    assert [(changed, fired) for changed, fired, _ in seen] == [(["AAA"], [1]), (["BBB", "AAA", "CCC"], [2])]
    assert all(name.startswith("stream-after") for _, _, name in seen)  # not the flush thread


def test_a_flush_is_published_before_its_follow_up_requests_the_revaluation(fake, assets, monkeypatch):
    import tasks.prices as price_tasks

    order: list[str] = []
    monkeypatch.setattr(price_tasks, "batch_publish", lambda result: order.append(f"publish {result.stored}"))
    monkeypatch.setattr(price_tasks, "revaluation_chain", lambda changed: order.append(f"revalue {changed}"))
    runner = StreamRunner(
        FinnhubStream(url=fake.url, api_key="k"), flush_ms=50, symbols_every=0.1, tracked=lambda: ["AAA"]
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(runner.run(),), daemon=True)
    thread.start()
    try:
        fake.wait_for(lambda: fake.subscriptions == {"AAA"})
        fake.trade("AAA", 12.5)
        wait(lambda: len(order) == 2, what="the publish and the revaluation request")
    finally:
        loop.call_soon_threadsafe(runner.request_stop)
        thread.join(15)
    assert order == ["publish ['AAA']", "revalue ['AAA']"]


def test_a_clean_stop_flushes_what_is_pending(fake, assets):
    h = Harness(fake, ["AAA"], flush_ms=5_000)
    with h:
        fake.wait_for(lambda: fake.subscriptions == {"AAA"})
        fake.trade("AAA", 1.0)
        wait(lambda: len(h.results) == 1)
        fake.trade("AAA", 2.0)  # waits out the 5 s window...
        wait(lambda: len(h.runner.conflator) == 1)
        h.stop()  # ...or is flushed on the way out
    assert price("AAA") == "2"
    fake.wait_for(lambda: fake.live == [], what="the socket closed")


def test_make_run_starts_the_stream_process_only_when_streaming_is_on():
    from config.stack import procfile_for_run

    procfile = "release: a\nweb: b\nstream: python manage.py run_stream\n"
    assert "stream:" not in procfile_for_run(procfile, stream=False)
    assert "stream: python manage.py run_stream" in procfile_for_run(procfile, stream=True)
