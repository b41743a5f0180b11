"""The revaluation task on a REAL Celery worker against the real PostgreSQL/Redis: the
portfolio_update it publishes reaches a channel subscribed to the portfolio's group. The
owner is connected and subscribed (registered in the connection registry): only events
someone can receive are built."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from backend.market.models import Asset, Quote
from backend.portfolios.models import Portfolio, PortfolioSnapshot, Position
from backend.realtime.groups import portfolio_group, user_group
from config.celery import app
from tests.layer import LayerInbox
from tests.live import celery_worker
from tests.registry import live_connection

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
TASK = "tasks.portfolios.recalculate_portfolios"
NOW = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)


def quote_write(symbol: str, price: str, previous_close: str) -> None:
    """What the price pipeline does, written directly and committed."""
    try:
        Quote.objects.update_or_create(
            asset=Asset.objects.get(symbol=symbol),
            defaults={
                "price": Decimal(price),
                "previous_close": Decimal(previous_close),
                "source": "test",
                "quoted_at": NOW,
                "fetched_at": datetime.now(UTC),
            },
        )
    finally:
        connection.close()  # called from a worker thread: do not leave its connection open


async def run_task(symbols: list[str]) -> dict[str, int]:
    result = app.send_task(TASK, kwargs={"symbols": symbols})
    return await asyncio.to_thread(result.get, timeout=60)


def test_a_revaluation_on_a_real_worker_publishes_portfolio_and_position_updates_once():
    ann = User.objects.create_user("ann")
    for symbol in ("AAPL", "MSFT", "KO"):
        Asset.objects.create(symbol=symbol)
    quote_write("AAPL", "190.50", "188.00")
    quote_write("MSFT", "410.25", "415.75")
    quote_write("KO", "60.00", "59.00")
    main = Portfolio.objects.create(owner=ann, name="Main")
    Position.objects.create(portfolio=main, asset=Asset.objects.get(symbol="AAPL"), quantity=10, average_cost=150)
    Position.objects.create(portfolio=main, asset=Asset.objects.get(symbol="MSFT"), quantity=2, average_cost=400)
    other = Portfolio.objects.create(owner=ann, name="Other")
    Position.objects.create(portfolio=other, asset=Asset.objects.get(symbol="KO"), quantity=1, average_cost=50)

    async def scenario() -> None:
        inbox = await LayerInbox.open()

        first = await run_task(["AAPL"])
        assert first["portfolios_valued"] == 1  # Other holds no AAPL
        assert first["published"] == 1
        message = await inbox.next(portfolio_group(main.pk))
        assert message["type"] == "portfolio_update"
        data = message["data"]
        # 10*190.50 + 2*410.25 = 2725.50; daily 10*2.50 + 2*(-5.50) = 14.00; cost 2300
        assert data["portfolio_id"] == main.pk
        assert data["total_value"] == 2725.5
        assert data["daily_change"] == 14.0
        assert data["daily_change_percent"] == 0.52  # 14 / 2711.50 * 100 = 0.5163...
        assert data["total_return"] == 425.5
        assert data["value_changed"] is True

        # The price moves 2 %: the portfolio and a position_update for the owner.
        await asyncio.to_thread(quote_write, "AAPL", "194.31", "188.00")
        second = await run_task(["AAPL"])
        assert second["published"] == 2
        update = await inbox.next(portfolio_group(main.pk))
        assert update["data"]["total_value"] == 2763.6  # + 10 * 3.81
        assert update["data"]["positions_updated"] == [
            {"symbol": "AAPL", "quantity": 10.0, "current_price": 194.31, "current_value": 1943.1, "daily_change": 63.1}
        ]
        position = await inbox.next(user_group(ann.pk))
        assert position["type"] == "position_update"
        assert position["data"]["significant_change"] is True
        assert position["data"]["total_return"] == 443.1

        # Same prices again: nothing stored, nothing published.
        third = await run_task(["AAPL"])
        assert third == {
            "portfolios_valued": 1, "portfolios_changed": 0, "snapshots_created": 0, "published": 0, "coalesced": 0,
        }  # fmt: skip
        with pytest.raises(TimeoutError):
            await inbox.next(portfolio_group(main.pk), within=1)
        await inbox.close()

    with celery_worker(), live_connection(ann.pk, [main.pk]):
        asyncio.run(scenario())
    assert PortfolioSnapshot.objects.filter(portfolio=main).count() == 2
    assert Portfolio.objects.get(pk=other.pk).valued_at is None
    assert Position.objects.get(portfolio=main, asset__symbol="AAPL").last_valued_price == Decimal("194.31")


def test_a_position_added_through_the_api_is_revalued_by_the_worker_after_commit():
    bob = User.objects.create_user("bob")
    Asset.objects.create(symbol="KO", tracking_status=Asset.TrackingStatus.TRACKED)
    quote_write("KO", "60.00", "59.00")
    portfolio = Portfolio.objects.create(owner=bob, name="Income")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=bob).key}")

    async def scenario() -> None:
        inbox = await LayerInbox.open()

        def add_position() -> int:
            try:
                response = client.post(
                    f"/api/portfolios/{portfolio.pk}/positions/",
                    {"symbol": "KO", "quantity": "100", "average_cost": "50"},
                    format="json",
                )
                return response.status_code
            finally:
                connection.close()

        assert await asyncio.to_thread(add_position) == 201
        message = await inbox.next(portfolio_group(portfolio.pk), within=30)
        assert message["type"] == "portfolio_update"
        assert message["data"]["total_value"] == 6000.0
        assert message["data"]["daily_change"] == 100.0
        assert message["data"]["total_return"] == 1000.0
        assert message["data"]["positions_updated"][0]["symbol"] == "KO"
        await inbox.close()

    with celery_worker(), live_connection(bob.pk, [portfolio.pk]):
        asyncio.run(scenario())
    portfolio.refresh_from_db()
    assert portfolio.total_value == Decimal("6000")
