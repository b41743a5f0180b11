"""The Procfile's `stream` process: follow the tracked symbols on the streaming source's
WebSocket and store their trades (tasks/stream.py). With MARKET_STREAM_SOURCE empty it idles
until stopped, so the Procfile line can run everywhere."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

logger = logging.getLogger("tasks.stream")


class Command(BaseCommand):
    help = "Stream trades from MARKET_STREAM_SOURCE into the price pipeline until SIGTERM or Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--flush-ms", type=int, default=settings.MARKET_STREAM_FLUSH_MS)
        parser.add_argument("--max-symbols", type=int, default=settings.MARKET_STREAM_MAX_SYMBOLS)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["flush_ms"] <= 0 or options["max_symbols"] < 0:
            raise CommandError("--flush-ms must be above zero and --max-symbols not below zero")
        name = settings.MARKET_STREAM_SOURCE
        if not name:
            self._idle()
            return
        # Imported only when streaming is on: an idle process needs no WebSocket client.
        from backend.market.services.stream import stream_source
        from tasks.stream import StreamRunner, stream_run

        try:
            source = stream_source(name)
        except ValueError as error:
            raise CommandError(str(error)) from None
        if name == "finnhub" and not settings.FINNHUB_API_KEY:
            logger.warning("stream: FINNHUB_API_KEY is empty; Finnhub will refuse the connection")
        runner = StreamRunner(source, flush_ms=options["flush_ms"], max_symbols=options["max_symbols"])
        asyncio.run(stream_run(runner))

    def _idle(self) -> None:
        """Streaming is off: say so once, then wait quietly for the process manager's signal."""
        stopped = threading.Event()

        def stop(signum: int, frame: FrameType | None) -> None:
            stopped.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, stop)
        logger.info("stream: off (MARKET_STREAM_SOURCE is empty); idling until stopped")
        while not stopped.wait(3600):
            pass
