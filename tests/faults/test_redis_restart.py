"""Redis restarted under load: a Daphne, a worker and beat on a throwaway redis-server that we
stop for a few seconds and start again on the same port (empty: no persistence)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from backend.market.models import RefreshRun
from config.embedded import start_redis, stop_redis
from tests.backend.ops.test_health_live import get_health
from tests.fakes.upstream import FakeUpstream, fake_upstream
from tests.live import celery_worker, daphne, free_port
from tests.tasks.prices_helpers import hold, wait_for, worker_env

from .helpers import ReconnectingClient, start_beat

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 4


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with fake_upstream() as server:
        yield server


def test_web_worker_beat_and_a_websocket_client_recover_from_a_redis_restart(upstream):
    # The worker runs under its process manager, as in `make run`: with celery/kombu 5.7 and
    # redis-py 8.1 a worker sometimes dies on a Redis restart inside kombu's transport
    # (kombu#582; docs/operations.md); the stack's promise is that it comes back by itself.
    hold(["AAPL"])
    upstream.set_quote("AAPL", 100.0, previous_close=99.0)
    token = Token.objects.create(user=User.objects.get(username="holder")).key
    redis_port = free_port()
    url, server = start_redis(port=redis_port, record=False)
    env = worker_env(upstream, ("finnhub",), REDIS_URL=url, REALTIME_UPDATE_INTERVAL="2")
    beat = None
    try:
        with celery_worker(respawned=True, **env) as worker, daphne(REDIS_URL=url) as (web, web_port):
            beat = start_beat(**env)
            wait_for(lambda: RefreshRun.objects.filter(kind="scheduled", finished_at__isnull=False).exists(),
                     60, "a first scheduled cycle")  # fmt: skip
            client = ReconnectingClient(f"ws://127.0.0.1:{web_port}/ws/realtime/", {"Authorization": f"Token {token}"},
                                        ["AAPL"])  # fmt: skip

            async def scenario() -> tuple[int, float, float]:
                nonlocal server
                stop = asyncio.Event()
                task = asyncio.create_task(client.run(stop))
                await asyncio.to_thread(wait_for, lambda: client.prices("AAPL"), 20, "the snapshot")
                await asyncio.to_thread(stop_redis, server)
                await asyncio.sleep(OUTAGE_SECONDS)
                _, server = await asyncio.to_thread(start_redis, redis_port, False)
                restarted = time.monotonic()
                last_before = await asyncio.to_thread(
                    lambda: RefreshRun.objects.order_by("-pk").values_list("pk", flat=True).first()
                )
                upstream.set_quote("AAPL", 123.0, previous_close=99.0)
                await asyncio.to_thread(
                    wait_for, lambda: 123.0 in client.prices("AAPL", restarted), 30, "the new price over WebSocket"
                )
                got_update = time.monotonic() - restarted
                await asyncio.to_thread(wait_for, lambda: get_health(web_port)[0] == 200, 30, "health 200")
                healthy = time.monotonic() - restarted
                stop.set()
                await task
                return int(last_before or 0), got_update, healthy

            last_before, got_update, healthy = asyncio.run(scenario())
            # Beat and the worker carry on: scheduled cycles start and finish after the restart.
            wait_for(
                lambda: RefreshRun.objects.filter(
                    kind="scheduled", finished_at__isnull=False, pk__gt=last_before
                ).exists(),
                30,
                "a scheduled cycle after the restart",
            )
            assert worker.proc.poll() is None, worker.log()[-3000:]
            assert beat.proc.poll() is None, beat.log()[-3000:]
            assert web.proc.poll() is None
            respawns = worker.log().count("respawn: ")
            print(f"\nredis restart: update after {got_update:.1f} s, health 200 after {healthy:.1f} s, "
                  f"client connects {client.connects}, closes {client.closes}, worker respawns {respawns}")  # fmt: skip
            # A client subscribed across the restart holds the new price within 5 s of Redis
            # answering (the next 2 s beat tick, the fetch, a publish on fresh connections).
            assert got_update <= 5, f"new price {got_update:.1f} s after Redis answered"
    finally:
        if beat is not None:
            beat.stop()
        stop_redis(server)
