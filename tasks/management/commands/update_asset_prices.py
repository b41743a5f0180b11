"""One price update now, in this process (no worker needed). Symbols not yet known are
tracked (an asset is created) and stored. The summary accounts for every symbol asked for;
the command fails (exit status 1) when it stored none of them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.market.selectors import tracked_symbols
from backend.market.services.history import history_load, history_symbols
from backend.market.services.manager import data_source_manager
from backend.market.symbols import InvalidSymbol, symbol_normalize
from tasks.inline import InlineCycle, prices_refresh_inline


class Command(BaseCommand):
    help = (
        "Fetch and store prices now for --symbols (new ones are tracked; default: every tracked symbol), "
        "bypassing the quote cache. Fails when nothing was stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--symbols", nargs="+", default=None, metavar="S")
        parser.add_argument("--broadcast", action="store_true", help="push changes to WebSocket clients")
        parser.add_argument("--dry-run", action="store_true", help="fetch and show, store nothing")
        parser.add_argument("--verbose", action="store_true", help="also list the symbols stored")
        parser.add_argument(
            "--historical",
            action="store_true",
            help="also load daily history bars (default symbols: every held or watched one and its FX pair)",
        )
        parser.add_argument("--days", type=int, default=30, help="with --historical: how many days")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            symbols = [symbol_normalize(s) for s in options["symbols"]] if options["symbols"] else tracked_symbols()
        except InvalidSymbol as error:
            raise CommandError(str(error)) from None
        if options["days"] <= 0:
            raise CommandError("--days must be above zero")
        history_for: list[str] = []
        if options["historical"] and not options["dry_run"]:
            # By default every close the portfolios and watchlists show, whether tracked now or not.
            history_for = symbols if options["symbols"] else history_symbols()
        if not symbols:
            self.stdout.write("nothing to update: no tracked symbols")
            if history_for:
                self.history_run(history_for, days=options["days"])
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
        self.summary_write(cycle, broadcast=options["broadcast"], verbose=options["verbose"])
        if history_for:
            self.history_run(history_for, days=options["days"])
        if cycle.stored == 0:
            raise CommandError(
                f"run {cycle.run_id}: stored none of the {cycle.symbols} symbols asked for "
                f"({len(cycle.failed)} failed, {len(cycle.unknown)} unknown)"
            )

    def history_run(self, symbols: list[str], *, days: int) -> None:
        loaded = history_load(symbols=symbols, days=days, now=datetime.now(UTC))
        self.stdout.write(
            f"history: {loaded.inserted} bars over {days} days, new for {len(loaded.symbols)} symbols"
            + (f" since {loaded.since}" if loaded.since else "")
            + (f" ({loaded.source})" if loaded.source else "; no configured source has history bars")
        )
        if loaded.failed:
            self.stdout.write(f"  history not answered for: {', '.join(loaded.failed)}")

    def summary_write(self, cycle: InlineCycle, *, broadcast: bool, verbose: bool) -> None:
        """Every symbol asked for, accounted for: stored, failed (each named, with why),
        unknown, stale or in flight."""
        extra = "".join(
            f", {n} {what}"
            for n, what in ((len(cycle.stale), "older than stored"), (len(cycle.in_flight), "in flight elsewhere"))
            if n
        )
        self.stdout.write(
            f"run {cycle.run_id}: {cycle.stored}/{cycle.symbols} stored, {cycle.changed} changed, "
            f"{len(cycle.failed)} failed, {len(cycle.unknown)} unknown{extra} in {cycle.seconds:.2f} s"
            + (" (broadcast)" if broadcast else "")
        )
        for symbol, message in sorted(cycle.failed.items()):
            self.stdout.write(f"  failed {symbol}: {message}")
        if cycle.unknown:
            self.stdout.write(f"  unknown to every source: {', '.join(sorted(cycle.unknown))}")
        if cycle.stale:
            self.stdout.write(f"  older than the stored quote (kept): {', '.join(sorted(cycle.stale))}")
        if cycle.in_flight:
            self.stdout.write(f"  being fetched by another run: {', '.join(sorted(cycle.in_flight))}")
        if verbose:
            self.stdout.write(f"  stored: {', '.join(sorted(cycle.stored_symbols))}")
