"""Metrics recorded by the pipeline reach /metrics and the status API, across processes."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from backend.core.metrics import STAGES, stage_latencies
from backend.market.models import Asset
from backend.market.services.manager import data_source_manager
from backend.market.services.refresh import price_batch_fetch
from tasks.prices import batch_publish
from tests.fakes.upstream import fake_upstream

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_old_samples(redis_client):
    # Counters, samples and circuit state (an earlier test may have opened finnhub's circuit).
    redis_client.flushdb()


def test_a_batch_records_its_stage_latencies_and_counters_and_metrics_shows_them(redis_client):
    Asset.objects.create(symbol="AAPL")
    with fake_upstream() as upstream:
        upstream.set_quote("AAPL", 190.5, previous_close=188.0)
        upstream.fail("finnhub", 500)
        env = {k: v for k, v in upstream.env(("finnhub", "yahoo")).items() if k != "MARKET_DATA_SOURCES"}
        with override_settings(MARKET_DATA_SOURCES=["finnhub", "yahoo"], **env):
            data_source_manager.cache_clear()
            try:
                result = price_batch_fetch(
                    symbols=["AAPL"], run_id=None, force=True, task_id="m1", attempt=0, final_attempt=True
                )
                batch_publish(result)  # the task records the stages once it has published
            finally:
                data_source_manager.cache_clear()
    latencies = stage_latencies()
    assert all(latencies[stage]["samples"] == 1 for stage in STAGES), latencies
    assert (latencies["end_to_end"]["p50_ms"] or 0) >= (latencies["fetch"]["p50_ms"] or 0) > 0

    staff = User.objects.create_user("ops", password="ops-pass-123", is_staff=True)
    client = Client()
    assert client.get("/metrics").status_code == 401
    client.force_login(staff)
    body = client.get("/metrics").content.decode()
    assert 'tickerflow_source_errors_total{source="finnhub"} 1.0' in body
    assert 'tickerflow_source_requests_total{source="yahoo"} 1.0' in body
    assert "tickerflow_quotes_stored_total 1.0" in body
    assert 'tickerflow_stage_latency_ms{quantile="0.5",stage="fetch"}' in body


def test_metrics_accepts_the_bearer_token_when_one_is_configured():
    with override_settings(METRICS_TOKEN="scrape-secret-123"):
        client = Client()
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-123").status_code == 200
