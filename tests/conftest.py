from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from tests.fakes.upstream import FakeUpstream, fake_upstream


@pytest.fixture(scope="session", autouse=True)
def _clean_redis() -> Iterator[None]:
    # The suite owns its Redis database (CI gives it its own db number): start from nothing,
    # so no queued task or lock from an earlier run leaks in.
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield
    client.close()


@pytest.fixture(autouse=True)
def _forget_cached_quotes() -> None:
    # The read cache (backend.market.selectors.quote_cached) is filled by the pipeline; tests
    # that write quotes with the ORM must not be served an earlier test's cached quote.
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(match="tf:*:quote:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def upstream(redis_client: redis.Redis) -> Iterator[FakeUpstream]:
    """The market APIs played by a local HTTP server, on a Redis without earlier tests' rate
    limits, circuits or claims."""
    redis_client.flushdb()
    with fake_upstream() as server:
        yield server


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _forget_queued_tasks() -> Iterator[None]:
    # What a test leaves queued (a chained recalculation, a retry countdown, a killed
    # worker's unacked batch) must never run in the next test's worker.
    yield
    from tests.live import forget_queued_tasks

    forget_queued_tasks()
