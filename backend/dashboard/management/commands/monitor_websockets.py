"""`monitor_websockets [--detailed] [--user NAME] [--export FILE]`: what the connection
registry knows about live WebSocket connections on every Daphne process.

`monitor_websockets --live [--symbols S ...] [--portfolios ID ...] [--token KEY] [--url URL]
[--seconds N]`: connects to /ws/realtime/ as a client (tickerflow_client) and prints every
message as it arrives, until Ctrl-C or N seconds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.realtime.registry import ConnectionManager
from tickerflow_client import Message, ServerError, Status, TickerflowClient, normalize_symbol

DEFAULT_LIVE_URL = "ws://127.0.0.1:8000/ws/realtime/"


def websocket_report(*, manager: ConnectionManager, username: str | None = None) -> dict[str, Any]:
    """Totals over every live Daphne process, plus each connection (optionally one user's)."""
    nodes = manager.live_nodes()
    connections = manager.connections()
    if username is not None:
        connections = [c for c in connections if c["username"] == username]
    now = time.time()
    return {
        "generated_at": now,
        "nodes": nodes,
        "total_connections": len(connections),
        "authenticated_users": len({c["user_id"] for c in connections}),
        "asset_subscriptions": sum(len(c["assets"]) for c in connections),
        "portfolio_subscriptions": sum(len(c["portfolios"]) for c in connections),
        "subscribed_symbols": sorted({s for c in connections for s in c["assets"]}),
        "connections": [
            {**c, "connected_seconds": round(now - c["connected_at"], 1)}
            for c in sorted(connections, key=lambda c: c["connected_at"])
        ],
    }


class Command(BaseCommand):
    help = "Show live WebSocket connections across every Daphne process (from the Redis registry)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--detailed", action="store_true", help="list every connection")
        parser.add_argument("--user", metavar="NAME", help="only this username's connections")
        parser.add_argument("--export", metavar="FILE", help="write the report as JSON to FILE")
        live = parser.add_argument_group("--live: watch the messages of one connection")
        live.add_argument("--live", action="store_true", help="connect as a client and print messages as they arrive")
        live.add_argument("--symbols", nargs="+", default=[], metavar="S", help="subscribe to these symbols")
        live.add_argument("--portfolios", nargs="+", default=[], type=int, metavar="ID", help="and these portfolios")
        live.add_argument("--token", metavar="KEY", help="API token (default: $TICKERFLOW_TOKEN)")
        live.add_argument("--url", default=DEFAULT_LIVE_URL, help=f"the WebSocket (default {DEFAULT_LIVE_URL})")
        live.add_argument("--seconds", type=float, metavar="N", help="stop after N seconds (default: at Ctrl-C)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["live"]:
            self._live(options)
            return
        report = websocket_report(manager=ConnectionManager(), username=options["user"])
        scope = f" of {options['user']}" if options["user"] else ""
        self.stdout.write(f"Daphne processes alive: {len(report['nodes'])}")
        self.stdout.write(f"Connections{scope}: {report['total_connections']}")
        self.stdout.write(f"Authenticated users: {report['authenticated_users']}")
        self.stdout.write(f"Asset subscriptions: {report['asset_subscriptions']}")
        self.stdout.write(f"Portfolio subscriptions: {report['portfolio_subscriptions']}")
        self.stdout.write(f"Symbols subscribed: {', '.join(report['subscribed_symbols']) or '-'}")
        if options["detailed"] or options["user"]:
            for conn in report["connections"]:
                self.stdout.write(self._line(conn))
        if options["export"]:
            Path(options["export"]).write_text(json.dumps(report, indent=2))
            self.stdout.write(self.style.SUCCESS(f"Exported to {options['export']}"))

    @staticmethod
    def _line(conn: dict[str, Any]) -> str:
        assets = ",".join(conn["assets"]) or "-"
        portfolios = ",".join(str(p) for p in conn["portfolios"]) or "-"
        return (
            f"  {conn['connection_id']}  {conn['username']} (id {conn['user_id']}, {conn['auth']})  "
            f"node {conn['node']}  up {conn['connected_seconds']}s  assets {assets}  portfolios {portfolios}"
        )

    # --- --live --------------------------------------------------------------------------

    def _live(self, options: dict[str, Any]) -> None:
        token = options["token"] or os.environ.get("TICKERFLOW_TOKEN")
        if not token:
            raise CommandError("--live needs --token KEY or TICKERFLOW_TOKEN (POST /api/auth/token/ gives one)")
        try:
            symbols = [normalize_symbol(s) for s in options["symbols"]]
            client = TickerflowClient(
                options["url"],
                token=token,
                on_status_change=lambda status: self._status(client, status),
                on_error=self._error,
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        try:
            asyncio.run(self._watch(client, symbols, options["portfolios"], options["seconds"]))
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")
            return
        if client.status == Status.SIGNED_OUT:
            raise CommandError(f"the server refused the token (close code {client.close_code})")

    async def _watch(
        self, client: TickerflowClient, symbols: list[str], portfolios: list[int], seconds: float | None
    ) -> None:
        for symbol in symbols:
            await client.subscribe_asset(symbol)
        for portfolio_id in portfolios:
            await client.subscribe_portfolio(portfolio_id)
        async with client, contextlib.aclosing(client.messages()) as messages:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    async for message in messages:
                        self.stdout.write(self._event_line(message))

    @staticmethod
    def _event_line(message: Message) -> str:
        data = json.dumps(message["data"], separators=(", ", ": "))
        return f"{message.get('timestamp', '-')}  #{message.get('seq', '-')}  {message['type']}  {data}"

    def _status(self, client: TickerflowClient, status: Status) -> None:
        if status == Status.RECONNECTING and client.next_delay is not None:
            self.stdout.write(f"-- {status} (next try in {client.next_delay:.1f} s)")
        else:
            self.stdout.write(f"-- {status}")

    def _error(self, error: Exception) -> None:
        if not isinstance(error, ServerError):  # those are printed as `error` messages
            self.stderr.write(f"-- {type(error).__name__}: {error}")
