"""A big run split over several database connections (spans.shares_revalue): each share in
its own transaction on its own connection, side by side, with the same figures and events as
one by one, the epochs collected once after, and the helpers' connections closed."""

from __future__ import annotations

import itertools
import threading
import time
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from django.db import connection

from backend.portfolios.models import Portfolio, ValuationEpoch, ValuedPrice
from backend.portfolios.services import revaluation
from backend.portfolios.services.revaluation import spans
from backend.portfolios.services.revaluation.spans import Share, Span
from backend.portfolios.valuation import FIGURE_FIELDS, portfolio_valuations

from .conftest import hold, quote_set

postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="parallel shares: PostgreSQL")
STORED = Decimal("1e-10")
SYMBOLS = ["AAPL", "MSFT", "KO", "NVDA"]


@pytest.fixture
def many_portfolios(ann, bob) -> list[Portfolio]:
    quote_set("AAPL", "190.50", "188.00")
    quote_set("MSFT", "410.25", "415.75")
    quote_set("KO", "60.00", "59.00")
    quote_set("NVDA", "880.00")
    portfolios = []
    for index in range(12):
        portfolio = Portfolio.objects.create(owner=ann if index % 2 else bob, name=f"P{index}")
        for offset, symbol in enumerate(SYMBOLS[: 1 + index % 4]):
            hold(portfolio, symbol, f"{index + 1}.{offset}000000001", f"{100 + index}.25")
        portfolios.append(portfolio)
    return portfolios


@pytest.fixture
def small_shares(monkeypatch, settings) -> list[tuple[str, Share]]:
    """Shares of 2 portfolios, split over 2 connections from 2 portfolios per connection on;
    records which thread revalued which share."""
    monkeypatch.setattr(spans, "SHARE_SIZE", 2)
    monkeypatch.setattr(spans, "PARALLEL_MIN_SHARE", 2)
    settings.PORTFOLIO_RECALC_CONNECTIONS = 2
    calls: list[tuple[str, Share]] = []
    original = revaluation._share_revalue_committed

    def recorded(share, **kwargs):
        calls.append((threading.current_thread().name, share))
        return original(share, **kwargs)

    monkeypatch.setattr(revaluation, "_share_revalue_committed", recorded)
    return calls


def backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        (count,) = cursor.fetchone()
    return int(count)


def backends_settle(expected: int, timeout: float = 5.0) -> int:
    """A closed connection's backend leaves pg_stat_activity a moment after the close."""
    deadline = time.monotonic() + timeout
    while (count := backends()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def assert_stored_as_python_derives(portfolios: list[Portfolio]) -> None:
    expected = portfolio_valuations(portfolios=Portfolio.objects.filter(pk__in=[p.pk for p in portfolios]))
    assert len(expected) == len(portfolios)
    for valuation in expected:
        row = Portfolio.objects.values_list(*FIGURE_FIELDS).get(pk=valuation.portfolio_id)
        python = tuple(getattr(valuation.figures, f).quantize(STORED, rounding=ROUND_HALF_EVEN) for f in FIGURE_FIELDS)
        assert row == python, valuation.name


def test_shares_split_gives_each_connection_as_many_shares_within_the_share_size(monkeypatch):
    monkeypatch.setattr(spans, "SHARE_SIZE", 4)
    monkeypatch.setattr(spans, "PARALLEL_MIN_SHARE", 2)
    ids = list(range(10))
    assert [len(s) for s in spans.shares_split(ids, connection_count=1)] == [4, 4, 2]
    assert [len(s) for s in spans.shares_split(ids, connection_count=2)] == [3, 3, 3, 1]  # 4 shares: 2 each
    assert [len(s) for s in spans.shares_split(ids[:3], connection_count=2)] == [3]  # too few to split
    assert [i for s in spans.shares_split(ids, connection_count=2) for i in s] == ids
    assert spans.shares_split([], connection_count=2) == []


@postgres_only
@pytest.mark.django_db
def test_portfolio_id_spans_cover_every_portfolio_once_in_about_equal_numbers(many_portfolios, monkeypatch):
    monkeypatch.setattr(spans, "PARALLEL_MIN_SHARE", 2)
    ids = sorted(p.pk for p in many_portfolios)
    # Gaps in the ids: spans are cut at id quantiles, not at equal widths.
    Portfolio.objects.filter(pk__in=ids[1:5]).delete()
    kept = [ids[0], *ids[5:]]
    cut = spans.portfolio_id_spans(connection_count=2)
    assert len(cut) == 2
    counts = [len([pk for pk in kept if span.low <= pk <= span.high]) for span in cut]
    assert counts == [4, 4]
    assert cut[0].low == kept[0]
    assert cut[-1].high == kept[-1]
    assert all(a.high + 1 == b.low for a, b in itertools.pairwise(cut))
    monkeypatch.setattr(spans, "SHARE_SIZE", 3)
    assert len(spans.portfolio_id_spans(connection_count=2)) == 4  # 3 would hold 3 each; 4 share evenly
    monkeypatch.setattr(spans, "PARALLEL_MIN_SHARE", 100)
    monkeypatch.setattr(spans, "SHARE_SIZE", 100)
    assert spans.portfolio_id_spans(connection_count=2) == [Span(kept[0], kept[-1])]  # too few to split
    Portfolio.objects.all().delete()
    assert spans.portfolio_id_spans(connection_count=2) == []


def test_an_empty_run_revalues_nothing():
    def revalue(share):
        raise AssertionError("no share to revalue")

    assert spans.shares_revalue([], revalue, connection_count=2).portfolios_revalued == 0


@pytest.mark.django_db
def test_revaluing_no_portfolios_is_a_no_op():
    assert revaluation.portfolios_revalue(portfolio_ids=[]).portfolios_revalued == 0
    assert revaluation.portfolios_revalue_for_symbols(symbols=["AAPL"]).portfolios_revalued == 0


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_big_run_revalues_its_shares_on_two_connections_with_the_same_figures(many_portfolios, small_shares):
    before = backends()
    # Every held asset changed: each share is an id span (all portfolios with positions in it).
    result = revaluation.portfolios_revalue_for_symbols(symbols=SYMBOLS)
    threads = {name for name, _ in small_shares}
    assert len(threads) == 2, small_shares  # this thread and one helper
    cut = [share for _, share in small_shares]
    assert all(isinstance(span, Span) and span.high - span.low < 2 for span in cut)
    revalued = sorted(pk for span in cut if isinstance(span, Span) for pk in span.ids)
    assert revalued == sorted(p.pk for p in many_portfolios)  # each portfolio in exactly one share
    assert result.portfolios_revalued == result.portfolios_changed == 12
    assert result.snapshots_created == 12
    assert len([e for e in result.events if e["type"] == "portfolio_update"]) == 12
    assert_stored_as_python_derives(many_portfolios)
    # One epoch per share, the unreferenced ones collected once the shares committed.
    referenced = set(Portfolio.objects.values_list("valued_epoch", flat=True))
    assert set(ValuationEpoch.objects.values_list("pk", flat=True)) == referenced
    assert set(ValuedPrice.objects.values_list("epoch_id", flat=True)) == referenced
    assert backends_settle(before) == before  # the helper's connection is closed

    quote_set("MSFT", "420.25", "415.75")
    small_shares.clear()
    again = revaluation.portfolios_revalue(portfolio_ids=[p.pk for p in many_portfolios])
    holders = [p for p in many_portfolios if p.positions.filter(asset__symbol="MSFT").exists()]
    assert again.portfolios_changed == len(holders)
    assert {name for name, _ in small_shares} == threads
    assert all(len(share) <= 2 for _, share in small_shares if not isinstance(share, Span))
    assert_stored_as_python_derives(many_portfolios)
    moved = {(p.portfolio_id, p.symbol) for r in again.revalued for p in r.positions}
    assert moved == {(p.pk, "MSFT") for p in holders}


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_share_failing_on_a_helper_connection_fails_the_run_and_keeps_what_committed(
    many_portfolios, small_shares, monkeypatch
):
    recorded = revaluation._share_revalue_committed
    last = max(p.pk for p in many_portfolios)

    def failing(share, **kwargs):
        if last in share:
            raise RuntimeError("share failed")
        return recorded(share, **kwargs)

    monkeypatch.setattr(revaluation, "_share_revalue_committed", failing)
    with pytest.raises(RuntimeError, match="share failed"):
        revaluation.portfolios_revalue(portfolio_ids=[p.pk for p in many_portfolios])
    stored = Portfolio.objects.filter(valued_at__isnull=False).count()
    assert 0 < stored < 12  # the shares that ran before the failure (or beside it) stay stored
    assert Portfolio.objects.get(pk=last).valued_at is None


def test_an_audience_is_narrowed_to_a_span_by_walking_its_own_sets_only():
    audience = revaluation.Audience(frozenset({1, 5, 9, 12}), frozenset())
    assert audience.portfolios_listened(range(4, 10)) == [5, 9]
    assert audience.portfolios_heard(range(4, 10)) == [5, 9]  # no owner connected: no query
    assert audience.portfolios_listened([9, 12, 40]) == [9, 12]
    assert revaluation.Audience.EVERYONE.portfolios_listened(range(0, 10**12)) is None


@pytest.mark.django_db
def test_a_connected_owners_portfolios_in_the_span_are_heard(many_portfolios):
    owner = many_portfolios[1].owner_id  # ann: the odd ones
    audience = revaluation.Audience(frozenset(), frozenset({owner}))
    ids = [p.pk for p in many_portfolios]
    span = range(ids[0], ids[5] + 1)
    assert audience.portfolios_heard(span) == [p.pk for p in many_portfolios[:6] if p.owner_id == owner]


@postgres_only
@pytest.mark.django_db
def test_a_span_share_tells_only_its_audience_and_stores_everyone(many_portfolios):
    watched = [many_portfolios[0], many_portfolios[3]]  # bob's P0, ann's P3
    ann = many_portfolios[1].owner_id
    audience = revaluation.Audience(frozenset(p.pk for p in watched), frozenset({ann}))
    revaluation.portfolios_revalue_for_symbols(symbols=SYMBOLS, audience=audience)
    quote_set("AAPL", "195.50", "188.00")  # +2.6 %: every portfolio holds AAPL
    result = revaluation.portfolios_revalue_for_symbols(symbols=SYMBOLS, audience=audience)
    assert result.portfolios_changed == 12  # stored for everyone
    assert_stored_as_python_derives(many_portfolios)
    updates = sorted(e["group"] for e in result.events if e["type"] == "portfolio_update")
    assert updates == sorted(f"portfolio.{p.pk}" for p in watched)
    moves = [e for e in result.events if e["type"] == "position_update"]
    assert {e["group"] for e in moves} == {f"user.{ann}"}
    assert sorted(e["data"]["portfolio_id"] for e in moves) == sorted(
        p.pk for p in many_portfolios if p.owner_id == ann
    )
    assert all(e["data"]["symbol"] == "AAPL" and e["data"]["significant_change"] for e in moves)
    p3 = next(e["data"] for e in result.events if e["group"] == f"portfolio.{watched[1].pk}")
    assert [p["symbol"] for p in p3["positions_updated"]] == ["AAPL"]
