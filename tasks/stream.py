"""The stream process (`manage.py run_stream`): one WebSocket to a streaming source, following
the tracked symbols, conflating their trades and storing them every MARKET_STREAM_FLUSH_MS
through the same path as a fetched batch (docs/architecture.md, "Streaming").

One asyncio loop reads the socket and never waits on the database: every flush, and the
re-read of the tracked symbols, runs on one helper thread (one database connection, flushes
in order). There a flush is stored, checked against the alerts and published, directly, as a
fetch task does (`tasks.prices.stored_batch_complete`'s steps); what follows the publish
(emailing firings, the revaluation request) runs on a second thread, merged across flushes,
so the next flush never waits for it. docs/operations.md, "Streaming quotes", says why this
is not a Celery task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import websockets
from django.conf import settings
from django.db import close_old_connections, connection

from backend.core.metrics import counter_add
from backend.market.selectors import tracked_symbols
from backend.market.services.refresh import BatchResult
from backend.market.services.stream.base import Parsed, StreamingSource, Trade
from backend.market.services.stream.conflate import Conflator
from backend.market.services.stream.state import stream_state_clear, stream_state_write
from backend.market.services.stream.store import stream_trades_store

from .prices import FollowUp, batch_deliver, batch_follow_up

logger = logging.getLogger(__name__)

SYMBOLS_EVERY = 5.0  # seconds between two reads of the tracked symbols
STATE_EVERY = 1.0  # seconds between two writes of the state (health, status, metrics)
RECONNECT_BASE, RECONNECT_CAP = 0.5, 30.0  # seconds: jittered exponential backoff
CONNECTION_HELD = 30.0  # a connection that lived this long starts the backoff over
FAILED_FLUSH_PAUSE = 1.0  # seconds before retrying a flush the database or Redis refused
FLUSH_TIMES_KEPT = 500  # recent flushes whose durations the state reports (p50, p99)


def backoff_delay(attempt: int, *, base: float = RECONNECT_BASE, cap: float = RECONNECT_CAP) -> float:
    """Exponential with jitter: between half and all of min(cap, base * 2**attempt)."""
    ceiling = min(cap, base * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


def followed_pick(
    *, current: Iterable[str], tracked: Sequence[str], limit: int, supports: Callable[[str], bool]
) -> set[str]:
    """The symbols to follow: tracked ones the source streams, at most `limit`; the ones
    already followed stay (no churn when the tracked set grows past the limit), the rest
    are filled in order. What is left out stays polled."""
    eligible = [s for s in dict.fromkeys(tracked) if supports(s)]
    held = set(current)
    ordered = [s for s in eligible if s in held] + [s for s in eligible if s not in held]
    return set(ordered[: max(0, limit)])


class StreamRunner:
    def __init__(
        self,
        source: StreamingSource,
        *,
        flush_ms: int | None = None,
        max_symbols: int | None = None,
        symbols_every: float = SYMBOLS_EVERY,
        state_every: float = STATE_EVERY,
        backoff: tuple[float, float] = (RECONNECT_BASE, RECONNECT_CAP),
        tracked: Callable[[], Sequence[str]] = tracked_symbols,
        complete: Callable[[BatchResult], FollowUp | None] = batch_deliver,
        follow_up: Callable[[FollowUp], None] = batch_follow_up,
    ) -> None:
        self.source = source
        self.flush_seconds = (flush_ms if flush_ms is not None else settings.MARKET_STREAM_FLUSH_MS) / 1000
        self.max_symbols = max_symbols if max_symbols is not None else settings.MARKET_STREAM_MAX_SYMBOLS
        self.symbols_every, self.state_every, self.backoff = symbols_every, state_every, backoff
        self.tracked, self.complete, self.follow_up = tracked, complete, follow_up
        self.conflator = Conflator()
        self.followed: set[str] = set()
        self.subscribed: set[str] = set()
        self.ws: Any = None
        self.connected_since: float | None = None
        self.last_message_at: float | None = None
        self.last_error = ""
        self.last_trade: dict[str, float] = {}
        self.totals = dict.fromkeys(("messages", "trades", "bad_frames", "flushes", "reconnects", "stored"), 0)
        self._reported = dict(self.totals)
        # (store, hand-on) seconds of recent flushes: what the state reports as their p50 / p99.
        self.flush_times: deque[tuple[float, float]] = deque(maxlen=FLUSH_TIMES_KEPT)
        self._rates = (time.monotonic(), 0, 0)
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-db")
        # Follow-ups wait here, merged, while one runs: a slow Redis or broker never queues one
        # task per flush behind it.
        self._after = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-after")
        self._after_lock = threading.Lock()
        self._after_pending: FollowUp | None = None
        self._subscribing = asyncio.Lock()
        self.stop = asyncio.Event()
        self._pending = asyncio.Event()
        self.failed = False

    def request_stop(self) -> None:
        self.stop.set()
        self._pending.set()

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A loop that ends before a stop is a bug: say so and stop (the platform restarts us)."""
        if not task.cancelled() and task.exception() is not None and not self.stop.is_set():
            logger.error("stream: %s failed", task.get_coro(), exc_info=task.exception())
            self.failed = True
            self.request_stop()

    async def _stop_wait(self, seconds: float) -> None:
        """Sleep `seconds`, or less if a stop is requested meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)

    async def run(self) -> None:
        """Until `request_stop`: then the pending trades are flushed and the socket closed."""
        logger.info("stream: %s, flushing every %d ms, at most %d symbols", self.source.name,
                    round(self.flush_seconds * 1000), self.max_symbols)  # fmt: skip
        loops = [asyncio.create_task(c) for c in (self._connection_loop(), self._symbols_loop(), self._state_loop())]
        flusher = asyncio.create_task(self._flush_loop())
        for task in (*loops, flusher):
            task.add_done_callback(self._ended)
        await self.stop.wait()
        if self.ws is not None:
            await self.ws.close()
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await asyncio.gather(flusher, return_exceptions=True)  # the last window is flushed before we go
        try:
            await asyncio.to_thread(stream_state_clear)
        except Exception as error:
            logger.warning("stream: could not clear its state: %s", error)
        await asyncio.get_running_loop().run_in_executor(self._db, _connection_close)
        self._db.shutdown(wait=True)
        self._after.shutdown(wait=True)  # the last flush's revaluation request goes out too
        logger.info("stream: stopped after %d trades in %d flushes", self.totals["trades"], self.totals["flushes"])

    # --- the socket -------------------------------------------------------------------
    async def _connection_loop(self) -> None:
        attempt = 0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                async with websockets.connect(
                    self.source.url(), open_timeout=10, close_timeout=2, max_size=2**22
                ) as ws:
                    self.ws, self.connected_since, self.subscribed = ws, time.time(), set()
                    logger.info("stream: connected to %s", self._public_url())
                    await self._subscriptions_sync()
                    async for frame in ws:
                        parsed = self._on_frame(frame)
                        reply = self.source.ping_reply() if parsed.ping else None
                        if reply is not None:
                            await ws.send(reply)
                self.last_error = "connection closed by the source"
            except (OSError, TimeoutError, websockets.WebSocketException) as error:
                self.last_error = f"{type(error).__name__}: {error}"[:300]
            finally:
                self.ws, self.connected_since, self.subscribed = None, None, set()
            if self.stop.is_set():
                return
            if time.monotonic() - started > CONNECTION_HELD:
                attempt = 0
            delay = backoff_delay(attempt, base=self.backoff[0], cap=self.backoff[1])
            attempt += 1
            self.totals["reconnects"] += 1
            logger.warning("stream: disconnected (%s); reconnecting in %.2f s", self.last_error, delay)
            await self._stop_wait(delay)

    def _public_url(self) -> str:
        return self.source.url().split("?", 1)[0]  # never the token

    def _on_frame(self, frame: str | bytes) -> Parsed:
        self.totals["messages"] += 1
        self.last_message_at = time.time()
        parsed = self.source.parse(frame)
        self.totals["bad_frames"] += parsed.rejected
        if parsed.error:
            self.last_error = parsed.error
            logger.warning("stream: %s says: %s", self.source.name, parsed.error)
        for trade in parsed.trades:
            if trade.symbol not in self.followed:
                continue  # a trade in flight after an unsubscribe
            self.totals["trades"] += 1
            traded = trade.traded_at.timestamp()
            if traded > self.last_trade.get(trade.symbol, 0.0):
                self.last_trade[trade.symbol] = traded
            if self.conflator.add(trade):
                self._pending.set()
        return parsed

    async def _subscriptions_sync(self) -> None:
        """Make the socket follow `followed`: unsubscribe what left, subscribe what came."""
        async with self._subscribing:
            ws = self.ws
            if ws is None:
                return
            try:
                for symbol in sorted(self.subscribed - self.followed):
                    await ws.send(self.source.unsubscribe_frame(symbol))
                    self.subscribed.discard(symbol)
                for symbol in sorted(self.followed - self.subscribed):
                    await ws.send(self.source.subscribe_frame(symbol))
                    self.subscribed.add(symbol)
            except websockets.WebSocketException as error:
                logger.info("stream: subscription sync cut short: %s", error)  # the reconnect resubscribes

    # --- the tracked symbols --------------------------------------------------------------
    def _tracked_sync(self) -> list[str]:
        close_old_connections()
        try:
            return list(self.tracked())
        except Exception:
            connection.close()
            raise

    async def _symbols_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stop.is_set():
            try:
                tracked = await loop.run_in_executor(self._db, self._tracked_sync)
            except Exception as error:
                logger.warning("stream: could not read the tracked symbols (keeping %d): %s", len(self.followed), error)
            else:
                wanted = followed_pick(current=self.followed, tracked=tracked, limit=self.max_symbols,
                                       supports=self.source.supports)  # fmt: skip
                if wanted != self.followed:
                    gone = self.followed - wanted
                    logger.info("stream: following %d symbols (+%d, -%d); %d tracked", len(wanted),
                                len(wanted - self.followed), len(gone), len(tracked))  # fmt: skip
                    self.followed = wanted
                    self.conflator.forget(gone)
                    for symbol in gone:
                        self.last_trade.pop(symbol, None)
                await self._subscriptions_sync()
            await self._stop_wait(self.symbols_every)

    # --- flushing -------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        """Flush as soon as a trade is pending, then at most every flush interval: a quiet
        symbol's trade goes out at once, a busy stream in windows of one interval."""
        loop = asyncio.get_running_loop()
        last_start = float("-inf")
        while True:
            self._pending.clear()
            if not len(self.conflator):
                if self.stop.is_set():
                    return
                await self._pending.wait()
                continue
            pause = last_start + self.flush_seconds - time.monotonic()
            if pause > 0 and not self.stop.is_set():
                await self._stop_wait(pause)
            last_start = time.monotonic()
            trades = self.conflator.drain()
            result = await loop.run_in_executor(self._db, self._flush_sync, trades)
            if result is None:
                self.conflator.restore(trades)
                if self.stop.is_set():
                    return  # the database is away: what is pending now is lost with us
                await asyncio.sleep(FAILED_FLUSH_PAUSE)

    def _flush_sync(self, trades: list[Trade]) -> BatchResult | None:
        """Store one flush and hand it on (publish, alerts, revaluation). None: nothing was
        stored (the database or Redis refused): the caller keeps the trades for the next."""
        started = time.perf_counter()
        try:
            close_old_connections()
            result = stream_trades_store(trades=trades, source=self.source.quote_source)
        except Exception as error:
            logger.warning("stream: storing %d trades failed, kept for the next flush: %s", len(trades), error)
            connection.close()
            return None
        self.totals["flushes"] += 1
        self.totals["stored"] += len(result.stored)
        stored = time.perf_counter()
        try:
            follow_up = self.complete(result)
        except Exception:
            logger.exception("stream: handing on a stored flush of %d quotes failed", len(result.stored))
        else:
            if follow_up is not None:
                self._follow_up_add(follow_up)
        self.flush_times.append((stored - started, time.perf_counter() - stored))
        return result

    def _follow_up_add(self, follow_up: FollowUp) -> None:
        with self._after_lock:
            pending, self._after_pending = self._after_pending, follow_up
            if pending is not None:  # not taken yet: one follow-up for both flushes
                follow_up.changed = list(dict.fromkeys(pending.changed + follow_up.changed))
                follow_up.fired = pending.fired + follow_up.fired
                return
        self._after.submit(self._follow_up_run)

    def _follow_up_run(self) -> None:
        with self._after_lock:
            follow_up, self._after_pending = self._after_pending, None
        if follow_up is None:
            return
        try:
            self.follow_up(follow_up)
        except Exception:
            logger.exception("stream: the follow-up of %d changed symbols failed", len(follow_up.changed))

    # --- state for health, status and metrics ---------------------------------------------
    def state(self) -> dict[str, str | int | float]:
        now = time.monotonic()
        since, messages, trades = self._rates
        seconds = max(now - since, 1e-6)
        self._rates = (now, self.totals["messages"], self.totals["trades"])
        return {
            "source": self.source.name,
            "url": self._public_url(),
            "connected": 1 if self.ws is not None else 0,
            "connected_since": self.connected_since or "",
            "followed": " ".join(sorted(self.followed)),
            "flush_ms": round(self.flush_seconds * 1000),
            "messages_per_second": round((self.totals["messages"] - messages) / seconds, 2),
            "trades_per_second": round((self.totals["trades"] - trades) / seconds, 2),
            "reconnects": self.totals["reconnects"],
            "last_message_at": self.last_message_at or "",
            "last_error": self.last_error,
            **self._flush_quantiles(),
        }

    def _flush_quantiles(self) -> dict[str, float]:
        """p50 / p99 in ms of the recent flushes: storing, handing on (the alert check and
        the publish; the follow-up runs elsewhere), and both; nothing before the first flush."""
        times = list(self.flush_times)
        if not times:
            return {}
        out: dict[str, float] = {}
        for name, values in (("store", [a for a, _ in times]), ("hand_on", [b for _, b in times]),
                             ("flush", [a + b for a, b in times])):  # fmt: skip
            cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
            out[f"{name}_p50_ms"], out[f"{name}_p99_ms"] = round(cuts[49] * 1000, 2), round(cuts[98] * 1000, 2)
        return out

    def _state_write(self, state: dict[str, str | int | float], last_trades: dict[str, float]) -> None:
        stream_state_write(state=state, last_trades=last_trades)
        for name in ("trades", "flushes", "reconnects", "bad_frames"):
            amount = self.totals[name] - self._reported[name]
            if amount:
                counter_add(f"stream_{name}", amount)
                self._reported[name] = self.totals[name]

    async def _state_loop(self) -> None:
        while not self.stop.is_set():
            last_trades = {s: t for s, t in self.last_trade.items() if s in self.followed}
            try:
                await asyncio.to_thread(self._state_write, self.state(), last_trades)
            except Exception as error:
                logger.warning("stream: could not record its state: %s", error)
            await self._stop_wait(self.state_every)


def _connection_close() -> None:
    connection.close()  # this thread's connection: `connection` resolves per thread


async def stream_run(runner: StreamRunner) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly (flush, close the socket)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.request_stop)
    await runner.run()
    if runner.failed:
        raise SystemExit(1)
