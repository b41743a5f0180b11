from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core import serializers
from django.core.management import call_command

from backend.market.models import Asset
from backend.portfolios.models import Portfolio, Position

pytestmark = pytest.mark.django_db


def dump() -> str:
    objects = [
        *User.objects.order_by("pk"),
        *Asset.objects.order_by("pk"),
        *Portfolio.objects.order_by("pk"),
        *Position.objects.order_by("pk"),
    ]
    return serializers.serialize("json", objects)


def test_seed_demo_twice_changes_nothing(settings):
    settings.DEMO_LOGINS = True
    call_command("seed_demo")
    first = dump()
    call_command("seed_demo")
    assert dump() == first


def test_seed_demo_loads_well_known_symbols_and_two_portfolios_for_demo(settings):
    settings.DEMO_LOGINS = True
    call_command("seed_demo")
    symbols = set(Asset.objects.values_list("symbol", flat=True))
    assert {"AAPL", "SPY", "BTC-USD", "^GSPC"} <= symbols
    assert len(symbols) >= 20
    demo = User.objects.get(username="demo")
    assert Portfolio.objects.filter(owner=demo).count() == 2
    assert demo.check_password("demo")
    assert User.objects.get(username="admin").is_superuser


def test_seed_demo_creates_no_password_logins_outside_dev_settings(settings):
    settings.DEMO_LOGINS = False
    call_command("seed_demo")
    assert not User.objects.filter(username="admin").exists()
    assert not User.objects.get(username="demo").has_usable_password()
