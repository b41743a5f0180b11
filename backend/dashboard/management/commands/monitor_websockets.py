"""`monitor_websockets [--detailed] [--user NAME] [--export FILE]`: what the connection
registry knows about live WebSocket connections on every Daphne process."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from backend.realtime.registry import ConnectionManager


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

    def handle(self, *args: Any, **options: Any) -> None:
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
