"""One price update now, in this process (no worker needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.market.selectors import tracked_symbols
from backend.market.services.history import history_load
from backend.market.services.manager import data_source_manager
from backend.market.symbols import InvalidSymbol, symbol_normalize
from tasks.inline import prices_refresh_inline


class Command(BaseCommand):
    help = "Fetch prices now for --symbols (default: every tracked symbol), bypassing the quote cache."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--symbols", nargs="+", default=None, metavar="S")
        parser.add_argument("--broadcast", action="store_true", help="push changes to WebSocket clients")
        parser.add_argument("--dry-run", action="store_true", help="fetch and show, store nothing")
        parser.add_argument("--verbose", action="store_true")
        parser.add_argument("--historical", action="store_true", help="also load daily history bars")
        parser.add_argument("--days", type=int, default=30, help="with --historical: how many days")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            symbols = [symbol_normalize(s) for s in options["symbols"]] if options["symbols"] else tracked_symbols()
        except InvalidSymbol as error:
            raise CommandError(str(error)) from None
        if options["days"] <= 0:
            raise CommandError("--days must be above zero")
        if not symbols:
            self.stdout.write("nothing to update: no tracked symbols")
            return
        if options["dry_run"]:
            outcome = data_source_manager().fetch(symbols)
            for symbol in symbols:
                if symbol in outcome.quotes:
                    q = outcome.quotes[symbol]
                    self.stdout.write(f"{symbol:<12} {q.price:>14} {q.source:<14} {q.quoted_at:%Y-%m-%d %H:%M:%S}")
                else:
                    failure = outcome.failures[symbol]
                    self.stdout.write(f"{symbol:<12} {'-':>14} {failure.kind.value}: {failure.message}")
            self.stdout.write(f"dry run: {len(outcome.quotes)}/{len(symbols)} priced, nothing stored")
            return
        cycle = prices_refresh_inline(symbols=symbols, publish=options["broadcast"], force=True)
        self.stdout.write(
            f"run {cycle.run_id}: {cycle.stored}/{cycle.symbols} stored, {cycle.changed} changed, "
            f"{len(cycle.failed)} failed, {len(cycle.unknown)} unknown in {cycle.seconds:.2f} s"
            + (" (broadcast)" if options["broadcast"] else "")
        )
        if options["verbose"]:
            for symbol, message in sorted(cycle.failed.items()):
                self.stdout.write(f"  failed {symbol}: {message}")
            for symbol in cycle.unknown:
                self.stdout.write(f"  unknown {symbol}")
        if options["historical"]:
            loaded = history_load(symbols=symbols, days=options["days"], now=datetime.now(UTC))
            self.stdout.write(f"history: {loaded} bars over {options['days']} days")
