"""Alerts test helpers: users, assets, quotes as a stored batch hands them to the check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from backend.alerts.models import Alert
from backend.alerts.services import check as check_module
from backend.alerts.services.check import CheckedQuote
from backend.market.models import Asset

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def q(symbol: str, price: str, minute: int, change_percent: str | None = None) -> CheckedQuote:
    return CheckedQuote(symbol, Decimal(price), None if change_percent is None else Decimal(change_percent), at(minute))


def make_alert(owner: User, symbol: str, condition: str, threshold: str, repeat: str = "once") -> Alert:
    asset, _ = Asset.objects.get_or_create(symbol=symbol, defaults={"tracking_status": "tracked"})
    return Alert.objects.create(
        owner=owner, asset=asset, condition=condition, threshold=Decimal(threshold), repeat=repeat
    )


@pytest.fixture
def ann() -> User:
    return User.objects.create_user("ann", email="ann@example.com", password="pw-ann-123")


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password="pw-bob-123")


@pytest.fixture(params=["sql", "orm"])
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the PostgreSQL statement and with the row-by-row pass (SQLite's)."""
    from django.db import connection

    if request.param == "sql" and connection.vendor != "postgresql":
        pytest.skip("the set-based statement needs PostgreSQL")
    if request.param == "orm":
        monkeypatch.setattr(check_module, "_check_sql", check_module._check_orm)
    return str(request.param)
