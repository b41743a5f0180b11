"""An FX-only move reaching a subscribed client, with real processes: a USD portfolio holds
SAP.DE (EUR); a `websockets` client subscribes to it over a real Daphne; only EURUSD=X gets a
new quote, fetched from the fake Yahoo by a forced refresh on a real Celery worker, stored,
and the revaluation it chains converts the unchanged euro price at the new rate: the client
receives a portfolio_update whose total_value moved by quantity x price x delta_fx. Real
Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import websockets
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.authtoken.models import Token

from backend.market.models import Asset, Quote
from backend.market.services.refresh import prices_refresh_force
from backend.portfolios.models import Portfolio
from backend.portfolios.services.revaluation import portfolios_revalue
from backend.portfolios.services.transactions import transaction_buy
from tests.live import celery_worker, daphne

from .prices_helpers import wait_for_run, worker_env

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
D = Decimal
STORED_AT = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # before the fake's quote time (now)
QUANTITY, PRICE = D(10), D("160.00")
FX_BEFORE, FX_AFTER = D("1.080000"), D("1.100000")


def quote_write(symbol: str, price: Decimal, previous_close: Decimal) -> None:
    asset = Asset.objects.get(symbol=symbol)
    Quote.objects.update_or_create(
        asset=asset,
        defaults={
            "price": price,
            "previous_close": previous_close,
            "source": "yahoo",
            "quoted_at": STORED_AT,
            "fetched_at": STORED_AT,
        },
    )


async def next_of_type(ws: Any, kind: str, wait: float) -> dict[str, Any]:
    deadline = time.monotonic() + wait
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=max(0.1, deadline - time.monotonic())))
        if message["type"] == kind:
            return message


def forced_pair_refresh() -> int:
    try:
        return prices_refresh_force(symbols=["EURUSD=X"]).run_id or 0
    finally:
        connection.close()  # called from a worker thread: do not leave its connection open


def run_finished(run_id: int) -> None:
    try:
        wait_for_run(run_id)
    finally:
        connection.close()


def test_a_pair_move_alone_revalues_and_reaches_the_subscribed_client(upstream):
    ann = User.objects.create_user("ann")
    token = Token.objects.create(user=ann).key
    for symbol in ("SAP.DE", "EURUSD=X"):
        Asset.objects.create(symbol=symbol, tracking_status=Asset.TrackingStatus.TRACKED)
    assert Asset.objects.get(symbol="SAP.DE").currency == "EUR"
    quote_write("SAP.DE", PRICE, D("158.00"))
    quote_write("EURUSD=X", FX_BEFORE, D("1.070000"))
    portfolio = Portfolio.objects.create(owner=ann, name="Europe", base_currency="USD")
    transaction_buy(portfolio=portfolio, symbol="SAP.DE", quantity=QUANTITY, price=D(150), fx_rate=D("1.05"))
    portfolios_revalue(portfolio_ids=[portfolio.pk])
    before = QUANTITY * PRICE * FX_BEFORE  # 1,728.00 USD
    upstream.set_quote("EURUSD=X", float(FX_AFTER), previous_close=1.07)
    upstream.set_quote("SAP.DE", 999.0, previous_close=158.0)  # never asked for: SAP.DE's price stays

    async def scenario(port: int) -> tuple[dict[str, Any], dict[str, Any], float]:
        headers = {"Authorization": f"Token {token}"}
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/realtime/", additional_headers=headers) as ws:
            assert json.loads(await ws.recv())["type"] == "connection"
            await ws.send(json.dumps({"type": "subscribe_portfolio", "data": {"portfolio_id": portfolio.pk}}))
            snapshot = await next_of_type(ws, "portfolio_update", wait=20)
            started = time.monotonic()
            run_id = await asyncio.to_thread(forced_pair_refresh)
            pushed = await next_of_type(ws, "portfolio_update", wait=60)
            elapsed = time.monotonic() - started
            await asyncio.to_thread(run_finished, run_id)
            return snapshot, pushed, elapsed

    with celery_worker(**worker_env(upstream, ("yahoo",))) as worker, daphne() as (web, port):
        snapshot, pushed, elapsed = asyncio.run(scenario(port))
        assert "Traceback" not in web.log()
    print(f"forced pair refresh -> portfolio_update on the client: {elapsed:.3f} s")
    assert "recalculate_portfolios" in worker.log()
    assert snapshot["data"]["total_value"] == float(before)
    delta = QUANTITY * PRICE * (FX_AFTER - FX_BEFORE)  # 10 x 160 EUR x 0.02 = 32.00 USD
    assert pushed["data"]["portfolio_id"] == portfolio.pk
    assert pushed["data"]["currency"] == "USD"
    assert pushed["data"]["total_value"] == float(before + delta) == 1760.0
    assert pushed["data"]["value_changed"] is True
    # Only the pair was fetched and stored; the euro price is the one stored before.
    assert upstream.symbols_requested("yahoo") == ["EURUSD=X"]
    assert Quote.objects.get(asset__symbol="SAP.DE").price == PRICE
    assert Quote.objects.get(asset__symbol="EURUSD=X").price == FX_AFTER
    portfolio.refresh_from_db()
    assert portfolio.total_value == before + delta
