"""The revaluation pass: events only for live listeners, previous-revaluation prices kept in
epochs, the in-database derivation equal to the Python one, nothing written twice."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import pytest
import redis
from django.conf import settings
from django.db import connection

from backend.portfolios.models import Portfolio, PortfolioSnapshot, Position, ValuationEpoch, ValuedPrice
from backend.portfolios.services import revaluation
from backend.portfolios.services.revaluation import Audience
from backend.portfolios.services.revaluation import audience_live as registry_audience
from backend.portfolios.valuation import FIGURE_FIELDS, portfolio_valuations
from backend.realtime.registry import PREFIX
from tests.registry import live_connection

from .conftest import hold, quote_set

pytestmark = pytest.mark.django_db
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="the in-database pass: PostgreSQL")
STORED = Decimal("1e-10")


def revalue(portfolios, **kwargs) -> revaluation.RevalueResult:
    return revaluation.portfolios_revalue(portfolio_ids=[p.pk for p in portfolios], **kwargs)


@pytest.fixture
def live_registry(monkeypatch):
    """The real connection registry (Redis), emptied before and after; the revaluation reads
    it instead of the 'everyone listens' default of these tests."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"{PREFIX}*"):
        client.delete(key)
    monkeypatch.setattr(revaluation, "audience_live", registry_audience)
    yield client
    for key in client.scan_iter(f"{PREFIX}*"):
        client.delete(key)
    client.close()


def test_only_subscribed_portfolios_get_portfolio_update_and_only_connected_owners_position_update(
    three_portfolios, live_registry
):
    gains, loss, large = three_portfolios["gains"], three_portfolios["loss"], three_portfolios["large"]
    with live_connection(loss.owner_id, [loss.pk]):  # ann watches Loss (she also owns Gains); bob is offline
        first = revalue([gains, loss, large])
        assert [(e["type"], e["group"]) for e in first.events] == [("portfolio_update", f"portfolio.{loss.pk}")]
        quote_set("MSFT", "420.25", "415.75")  # Loss: +2.4 %
        quote_set("BTC-USD", "66000.000000", "63000.000000")  # Gains and Large: +2.7 %
        result = revalue([gains, loss, large])
    assert result.portfolios_changed == 3  # stored for everyone ...
    assert all(Portfolio.objects.get(pk=p.pk).total_value for p in (gains, loss, large))
    # ... but told only to who listens: Loss's subscriber, and ann (connected) about her
    # significant moves in both her portfolios; nothing for bob's Large.
    assert sorted((e["type"], e["group"], e["data"].get("symbol", "")) for e in result.events) == [
        ("portfolio_update", f"portfolio.{loss.pk}", ""),
        ("position_update", f"user.{loss.owner_id}", "BTC-USD"),
        ("position_update", f"user.{loss.owner_id}", "MSFT"),
    ]
    update = next(e for e in result.events if e["type"] == "portfolio_update")["data"]
    assert [p["symbol"] for p in update["positions_updated"]] == ["MSFT"]
    assert result.positions_read == 2  # MSFT in Loss, BTC-USD in Gains: Large's never read


def test_the_registry_audience_is_the_subscribed_portfolios_and_connected_users(live_registry):
    with live_connection(7, [70, 71]), live_connection(8, []):
        audience = revaluation.audience_live()
    assert audience.portfolio_ids == {70, 71}
    assert audience.owner_ids == {7, 8}


def test_significance_is_measured_from_each_portfolios_own_previous_revaluation(three_portfolios, ann):
    loss = three_portfolios["loss"]
    other = Portfolio.objects.create(owner=ann, name="Other")
    hold(other, "MSFT", "1", "400")
    revalue([loss, other])  # both at MSFT 410.25
    quote_set("MSFT", "414.00", "415.75")  # +0.9 %: only Other is revalued at it
    revalue([other])
    quote_set("MSFT", "416.00", "415.75")
    events = revalue([loss, other], audience=Audience.EVERYONE).events
    significant = {(e["data"]["portfolio_id"], e["data"]["symbol"]) for e in events if e["type"] == "position_update"}
    # Loss: 410.25 -> 416.00 is +1.40 %; Other: 414.00 -> 416.00 is +0.48 %.
    assert significant == {(loss.pk, "MSFT")}
    assert Position.objects.get(portfolio=loss, asset__symbol="MSFT").last_valued_price == Decimal("416.00")


def test_a_rerun_on_the_same_prices_writes_no_row_and_records_no_epoch(three_portfolios):
    portfolios = list(three_portfolios.values())
    revalue(portfolios)
    counts = (ValuationEpoch.objects.count(), ValuedPrice.objects.count(), PortfolioSnapshot.objects.count())
    versions = _row_versions()
    result = revalue(portfolios)
    assert (result.portfolios_changed, result.events) == (0, [])
    assert (ValuationEpoch.objects.count(), ValuedPrice.objects.count(), PortfolioSnapshot.objects.count()) == counts
    assert _row_versions() == versions


def _row_versions() -> list[tuple]:
    """Each portfolio and position row's version: PostgreSQL's xmin changes with any write."""
    if connection.vendor != "postgresql":
        return list(Portfolio.objects.order_by("pk").values_list("pk", "valued_at", "valued_epoch"))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'p', id, xmin::text FROM portfolios_portfolio UNION ALL "
            "SELECT 'q', id, xmin::text FROM portfolios_position ORDER BY 1, 2"
        )
        return cursor.fetchall()


def test_epochs_no_portfolio_points_at_are_deleted_by_a_later_pass(three_portfolios):
    portfolios = list(three_portfolios.values())
    for price in ("400.00", "401.00", "402.00", "403.00"):
        quote_set("MSFT", price, "415.75")
        revalue(portfolios)
    referenced = set(Portfolio.objects.values_list("valued_epoch", flat=True))
    kept = set(ValuationEpoch.objects.values_list("pk", flat=True))
    assert kept == referenced  # collected once each run's shares committed
    assert set(ValuedPrice.objects.values_list("epoch_id", flat=True)) == kept


def test_a_position_removed_and_added_again_has_no_previous_revaluation(three_portfolios):
    loss = three_portfolios["loss"]
    revalue([loss])
    Position.objects.filter(portfolio=loss, asset__symbol="MSFT").delete()
    hold(loss, "MSFT", "20", "450.00")
    quote_set("MSFT", "420.25", "415.75")  # +2.4 % from the removed position's valued price
    events = revalue([loss]).events
    (update,) = [e for e in events if e["type"] == "portfolio_update"]
    assert [p["symbol"] for p in update["data"]["positions_updated"]] == ["MSFT"]
    assert [e for e in events if e["type"] == "position_update"] == []  # new: nothing to compare to


@postgres_only
@pytest.mark.parametrize(
    "value",
    ["0.50000000005", "0.50000000015", "-0.50000000005", "-0.50000000015", "1.00000000004999", "7.12345678905001"],
)
def test_tf_round_half_even_rounds_like_the_model(value):
    with connection.cursor() as cursor:
        cursor.execute("SELECT tf_round_half_even(%s::numeric, 10)", [value])
        (stored,) = cursor.fetchone()
    assert stored == Decimal(value).quantize(STORED, rounding=ROUND_HALF_EVEN)


@postgres_only
def test_the_database_derivation_stores_what_the_python_derivation_gives_to_the_last_digit(ann, market):
    """Ties at the 11th decimal and ratios that do not terminate: the stored figures equal
    figures_derive's, rounded half-even to 10 places (PostgreSQL's round() would differ)."""
    tie = Portfolio.objects.create(owner=ann, name="Tie")
    hold(tie, "KO", "1.0000000001", "0.000001")  # 1.0000000001 * 60 = 60.000000006 ...
    quote_set("TIE", "0.500000", "0.300000")
    hold(tie, "TIE", "0.0000000001", "0.1")  # ... + 0.00000000005: a tie at the 11th decimal
    thirds = Portfolio.objects.create(owner=ann, name="Thirds")
    hold(thirds, "KO", "3", "7")  # return 180 - 21 = 159 over 21: 757.142857...
    hold(thirds, "AAPL", "0.3333333333", "150.00")
    revalue([tie, thirds], audience=Audience.EVERYONE)
    expected = portfolio_valuations(portfolios=Portfolio.objects.filter(pk__in=[tie.pk, thirds.pk]))
    for valuation in expected:
        row = Portfolio.objects.values_list(*FIGURE_FIELDS).get(pk=valuation.portfolio_id)
        python = tuple(getattr(valuation.figures, f).quantize(STORED, rounding=ROUND_HALF_EVEN) for f in FIGURE_FIELDS)
        assert row == python, valuation.name
    tie_value = Portfolio.objects.get(pk=tie.pk).total_value
    assert tie_value == Decimal("60.0000000060")  # 60.00000000605 -> ...060 (even), not ...061
