"""A foreground price feed without beat or workers, for single-process deployments."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from tasks.inline import prices_refresh_inline


class Command(BaseCommand):
    help = "Run price refresh cycles in this process every --interval seconds until Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=settings.REALTIME_UPDATE_INTERVAL, help="seconds")
        parser.add_argument("--batch-size", type=int, default=settings.REALTIME_BATCH_SIZE)
        parser.add_argument("--max-workers", type=int, default=settings.REALTIME_MAX_WORKERS, help="parallel batches")
        parser.add_argument("--verbose", action="store_true")
        parser.add_argument("--cycles", type=int, default=0, help="stop after this many cycles (0 = never)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["interval"] <= 0 or options["batch_size"] <= 0 or options["max_workers"] <= 0:
            self.stderr.write("--interval, --batch-size and --max-workers must be above zero")
            raise SystemExit(2)
        if options["verbose"]:
            logging.getLogger("backend.market").setLevel(logging.DEBUG)
        stop = threading.Event()

        def request_stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        self.stdout.write(
            f"price feed: every {options['interval']} s, batches of {options['batch_size']}, "
            f"{options['max_workers']} at a time; Ctrl-C stops"
        )
        cycles = 0
        try:
            while not stop.is_set():
                cycle = prices_refresh_inline(batch_size=options["batch_size"], max_workers=options["max_workers"])
                cycles += 1
                if cycle.skipped_locked:
                    self.stdout.write("cycle skipped: another cycle is running")
                else:
                    self.stdout.write(
                        f"run {cycle.run_id}: {cycle.stored}/{cycle.symbols} stored, {cycle.changed} changed, "
                        f"{len(cycle.failed)} failed, {len(cycle.unknown)} unknown in {cycle.seconds:.2f} s"
                    )
                    if options["verbose"]:
                        for symbol, error in sorted(cycle.failed.items()):
                            self.stdout.write(f"  failed {symbol}: {error}")
                if options["cycles"] and cycles >= options["cycles"]:
                    break
                stop.wait(options["interval"])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write("price feed stopped")
