"""/ws/stock_predictions/: the reference client's message shape, no envelope, same authentication."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from backend.market.models import Asset, PriceHistory
from tests.consumers.conftest import close_code, communicator, run

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/ws/stock_predictions/"


def _history(symbol: str, n: int) -> None:
    asset = Asset.objects.create(symbol=symbol)
    t0 = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
    price = Decimal(100)
    rows = []
    for i in range(n):
        price = price * (Decimal("1.01") if i % 2 else Decimal("0.995"))
        rows.append(
            PriceHistory(
                asset=asset, quoted_at=t0 + timedelta(minutes=i), price=price.quantize(Decimal("0.000001")), source="s"
            )
        )
    PriceHistory.objects.bulk_create(rows)


async def _ask(comm, message) -> dict:
    await comm.send_to(text_data=json.dumps(message) if not isinstance(message, str) else message)
    return json.loads(await comm.receive_from(timeout=3))


def test_a_symbol_with_history_gets_a_prediction_without_envelope(token):
    _history("AAPL", 40)

    async def scenario():
        comm = communicator(PATH, token=token)
        ok, _ = await comm.connect()
        assert ok
        answer = await _ask(comm, {"stock_symbol": "aapl"})
        await comm.disconnect()
        return answer

    answer = run(scenario)
    assert set(answer) == {
        "prediction",
        "symbol",
        "forecast_price",
        "low",
        "high",
        "horizon_minutes",
        "based_on_points",
        "model",
    }
    assert answer["symbol"] == "AAPL"
    assert 0 <= answer["prediction"] <= 100
    assert answer["low"] < answer["forecast_price"] < answer["high"]
    assert answer["based_on_points"] == 40
    assert answer["horizon_minutes"] == 60


def test_short_history_and_bad_requests_get_an_error_object(token):
    _history("NEWCO", 19)

    async def scenario():
        comm = communicator(PATH, token=token)
        await comm.connect()
        answers = [
            await _ask(comm, {"stock_symbol": "NEWCO"}),
            await _ask(comm, {"stock_symbol": "NOSUCH"}),
            await _ask(comm, "nope"),
            await _ask(comm, {"stock_symbol": "bad symbol!"}),
            await _ask(comm, {"symbol": "AAPL"}),
        ]
        await comm.disconnect()
        return answers

    answers = run(scenario)
    assert [a["error"] for a in answers] == [
        "insufficient_history",
        "insufficient_history",
        "invalid_json",
        "invalid_symbol",
        "invalid_message",
    ]
    assert "19" in answers[0]["message"]


def test_predictions_need_a_login_too():
    async def scenario():
        comm = communicator(PATH)
        ok, _ = await comm.connect()
        assert ok
        return await close_code(comm)

    assert run(scenario) == 4401
