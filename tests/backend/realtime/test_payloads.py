"""The wire form of pushed payloads (backend/realtime/payloads.to_wire)."""

from __future__ import annotations

from decimal import Decimal

from backend.realtime.payloads import to_wire


def test_money_is_rounded_half_even_to_cents_and_prices_and_quantities_are_sent_as_stored():
    payload = {
        "portfolio_id": 7,
        "name": "Gains",
        "value_changed": True,
        "valued_at": None,
        "total_value": Decimal("36670.065"),  # a tie: to the even cent
        "daily_change": Decimal("-0.015"),
        "positions_updated": [
            {
                "symbol": "AAPL",
                "quantity": Decimal("0.3333333333"),
                "current_price": Decimal("190.123456"),
                "current_value": Decimal("63.374485"),
            },
        ],
    }
    assert to_wire(payload) == {
        "portfolio_id": 7,
        "name": "Gains",
        "value_changed": True,
        "valued_at": None,
        "total_value": 36670.06,
        "daily_change": -0.02,
        "positions_updated": [
            {"symbol": "AAPL", "quantity": 0.3333333333, "current_price": 190.123456, "current_value": 63.37},
        ],
    }


def test_a_list_of_decimals_takes_the_rounding_of_its_key():
    assert to_wire({"prices": [Decimal("1.005")], "price": [Decimal("1.005")]}) == {"prices": [1.0], "price": [1.005]}
