"""fetch_price_batch's own duties (delivery cap, backoff), run eagerly in-process: the
pipeline's behaviour with real workers is in test_prices_live.py."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

from backend.market.models import Asset, RefreshRun
from backend.market.services.claims import delivery_count
from tasks.prices import fetch_price_batch, retry_countdown

pytestmark = pytest.mark.django_db


def test_backoff_grows_exponentially_with_jitter_and_stays_below_the_visibility_timeout():
    for retries in range(12):
        countdown = retry_countdown(retries)
        ceiling = min(settings.PRICE_RETRY_BACKOFF * 2**retries, settings.PRICE_RETRY_BACKOFF_MAX)
        assert ceiling / 2 <= countdown <= ceiling
        assert countdown < settings.CELERY_VISIBILITY_TIMEOUT
    assert len({round(retry_countdown(3), 6) for _ in range(20)}) > 1


@override_settings(PRICE_FETCH_MAX_DELIVERIES=2)
def test_a_batch_redelivered_past_the_cap_gives_up_and_is_recorded_failed(redis_client):
    redis_client.flushdb()
    Asset.objects.create(symbol="BOOM")
    run = RefreshRun.objects.create(batches_total=1, symbols_requested=1)
    for _ in range(2):  # two earlier deliveries died with their worker
        delivery_count(task_id="doomed", attempt=0)
    result = fetch_price_batch.apply(kwargs={"symbols": ["BOOM"], "run_id": run.pk}, task_id="doomed").get()
    assert result == {"gave_up": ["BOOM"]}
    run.refresh_from_db()
    assert run.finished_at is not None
    assert run.errors == {"BOOM": "redelivery limit reached"}
    assert Asset.objects.get(symbol="BOOM").tracking_status == Asset.TrackingStatus.FAILING
