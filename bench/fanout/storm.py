"""The connection-storm benchmark's pieces: the scratch data (quoted symbols, a portfolio per
client) and the load-generator processes, whose clients connect all at once, subscribe to
their symbols and portfolio, and count as back only once they hold every snapshot. After a
server restart they reconnect with the JS client's backoff (clients/js: full jitter, base
1 s, doubling, capped at 30 s, or at 4 s while attempts are refused before reaching a
server)."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from bench.fanout.designs import client_symbols
from bench.fanout.loadgen import RawClient
from bench.fanout.processes import BASE_DIR, bench_env, manage_shell

BASE_DELAY = 1.0  # clients/js/src/tickerflow-client.js BASE_DELAY_MS
MAX_DELAY = 30.0  # MAX_DELAY_MS
UNREACHED_MAX_DELAY = 4.0  # UNREACHED_MAX_DELAY_MS


def backoff_delay(attempt: int, *, reached: bool = True) -> float:
    """clients/js backoffDelay: uniform in [0, min(cap, base * 2^attempt)); the cap is the
    client's while nothing answered (`reached` false) or once a server accepted."""
    cap = MAX_DELAY if reached else UNREACHED_MAX_DELAY
    return random.uniform(0, min(cap, BASE_DELAY * 2 ** max(0, attempt)))


def prepare_storm_database(db: Path, symbols: list[str], portfolios: int) -> tuple[str, list[int]]:
    """A bench user with a token, `symbols` quoted, `portfolios` portfolios of two positions."""
    env = bench_env(db, "channels_redis.core.RedisChannelLayer")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
    script = f"""
from datetime import UTC, datetime
from decimal import Decimal
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from backend.market.models import Asset, Quote
from backend.portfolios.models import Portfolio, Position
User.objects.filter(username='storm').delete()
Asset.objects.filter(symbol__in={symbols!r}).delete()
u = User.objects.create_user('storm')
now = datetime.now(UTC)
assets = Asset.objects.bulk_create([Asset(symbol=s, tracking_status='tracked') for s in {symbols!r}])
Quote.objects.bulk_create([Quote(asset=a, price=Decimal('100.5'), previous_close=Decimal('99'), change=Decimal('1.5'),
    change_percent=Decimal('1.51'), volume=1000, source='simulated', quoted_at=now, fetched_at=now) for a in assets])
ps = Portfolio.objects.bulk_create([Portfolio(owner=u, name=f'p{{i}}') for i in range({portfolios})])
Position.objects.bulk_create([Position(portfolio=p, asset=assets[(k + i) % len(assets)], quantity=Decimal('3'),
    average_cost=Decimal('90'), cost_basis=Decimal('270')) for i, p in enumerate(ps) for k in (0, 7)])
print(Token.objects.create(user=u).key, ",".join(str(p.pk) for p in ps))
"""
    token, ids = manage_shell(script, env).split(" ")
    return token, [int(i) for i in ids.split(",")]


def storm_main(
    port: int, token: str, plan: list[tuple[int, int]], symbols: list[str], per_client: int, shared: Any
) -> None:
    asyncio.run(_storm(port, token, plan, symbols, per_client, shared))


class StormClient:
    """One client: connect, subscribe, hold snapshots; reconnect with backoff when closed."""

    def __init__(self, port: int, token: str, symbols: list[str], portfolio_id: int) -> None:
        self.port, self.token, self.symbols, self.portfolio_id = port, token, symbols, portfolio_id
        self.client: RawClient | None = None
        self.complete: asyncio.Future[None] | None = None
        self.snapshots: set[Any] = set()
        self.close_codes: list[int] = []
        self.failures = 0

    def on_text(self, payload: bytes) -> None:
        message = json.loads(payload)
        kind, data = message["type"], message.get("data") or {}
        if kind == "asset_update":
            self.snapshots.add(data.get("symbol"))
        elif kind == "portfolio_update":
            self.snapshots.add(("portfolio", data.get("portfolio_id")))
        if len(self.snapshots) == len(self.symbols) + 1 and self.complete is not None and not self.complete.done():
            self.complete.set_result(None)

    async def hold_snapshots(self, attempt_timeout: float = 120) -> float:
        """Connect (retrying with backoff) until every snapshot is held; the time it happened."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            reached = False
            self.snapshots = set()
            self.complete = loop.create_future()
            try:
                _, client = await asyncio.wait_for(
                    loop.create_connection(partial(RawClient, self.on_text), "127.0.0.1", self.port), attempt_timeout
                )
                self.client = client
                client.handshake(self.port, "/ws/realtime/", self.token)
                await asyncio.wait_for(client.opened, attempt_timeout)
                reached = True
                for symbol in self.symbols:
                    client.send_text(json.dumps({"type": "subscribe_asset", "data": {"symbol": symbol}}))
                client.send_text(
                    json.dumps({"type": "subscribe_portfolio", "data": {"portfolio_id": self.portfolio_id}})
                )
                done, _ = await asyncio.wait(
                    {self.complete, client.closed}, timeout=attempt_timeout, return_when="FIRST_COMPLETED"
                )
                if self.complete in done:
                    return time.time()
                if client.close_code is not None:
                    self.close_codes.append(client.close_code)
                client.transport.abort()
            except (OSError, TimeoutError, ConnectionError):
                pass
            self.failures += 1
            await asyncio.sleep(backoff_delay(attempt, reached=reached))
            attempt += 1


async def _storm(
    port: int, token: str, plan: list[tuple[int, int]], symbols: list[str], per_client: int, shared: Any
) -> None:
    clients = [StormClient(port, token, client_symbols(i, symbols, per_client), pid) for i, pid in plan]
    start_at: float = shared["start_at"]
    await asyncio.sleep(max(0.0, start_at - time.time()))
    done = await asyncio.gather(*(c.hold_snapshots() for c in clients))
    first = {
        "seconds": [t - start_at for t in done],
        "failures": sum(c.failures for c in clients),
        "close_codes": [code for c in clients for code in c.close_codes],
    }
    shared["out"].put(("connected", first))
    # Restart phase: wait for the server to go away, then come back as browsers do.
    restart = shared["restart"]
    if not restart:
        return
    for c in clients:
        c.close_codes = []
        c.failures = 0

    async def come_back(c: StormClient) -> float:
        assert c.client is not None
        await c.client.closed
        await asyncio.sleep(backoff_delay(0))  # the JS client's first reconnect delay
        return await c.hold_snapshots()

    back = await asyncio.gather(*(come_back(c) for c in clients))
    shared["out"].put(
        (
            "back",
            {
                "times": back,
                "failures": sum(c.failures for c in clients),
                "close_codes": [code for c in clients for code in c.close_codes],
            },
        )
    )
