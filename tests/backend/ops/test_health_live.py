"""/api/health/ against real processes: a Daphne whose Redis or database we take away."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from backend.market.models import Asset, Quote, RefreshRun
from config.embedded import start_redis, stop_redis
from tests.live import celery_worker, daphne, free_port

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def get_health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health/", timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def fresh_data() -> None:
    asset = Asset.objects.create(symbol="AAPL", tracking_status=Asset.TrackingStatus.TRACKED)
    now = timezone.now()
    Quote.objects.create(asset=asset, price=Decimal("190.5"), source="simulated", quoted_at=now, fetched_at=now)
    RefreshRun.objects.create(kind=RefreshRun.Kind.SCHEDULED, finished_at=now)


def test_health_is_healthy_with_a_worker_fresh_data_and_a_recent_cycle():
    fresh_data()
    with celery_worker(), daphne() as (_, port):
        status, body = get_health(port)
    assert status == 200, body
    assert body["status"] == "healthy"
    services = body["services"]
    assert services["workers"]["count"] >= 1
    assert services["price_feed"]["running"] is True
    assert services["data_freshness"]["is_stale"] is False
    assert set(services["websocket_connections"]) >= {
        "total_connections", "authenticated_users", "asset_subscriptions", "portfolio_subscriptions",
    }  # fmt: skip


def test_health_is_degraded_without_a_worker_and_with_stale_data():
    fresh_data()
    with daphne() as (_, port):
        status, body = get_health(port)
        assert status == 200
        assert body["status"] == "degraded"
        assert body["services"]["workers"]["ok"] is False
        Quote.objects.update(fetched_at=timezone.now() - timedelta(seconds=301))
        with celery_worker():
            status, body = get_health(port)
    assert status == 200
    assert body["status"] == "degraded"
    assert body["services"]["data_freshness"]["is_stale"] is True
    assert body["services"]["workers"]["ok"] is True


def test_health_goes_503_when_redis_stops_and_recovers_when_it_returns():
    port = free_port()
    url, server = start_redis(port=port, record=False)
    try:
        with daphne(REDIS_URL=url) as (_, web_port):
            assert get_health(web_port)[0] == 200
            stop_redis(server)
            status, body = get_health(web_port)
            assert status == 503
            assert body["status"] == "unhealthy"
            assert body["services"]["redis"]["ok"] is False
            _, server = start_redis(port=port, record=False)
            status, body = get_health(web_port)
            assert status == 200, body
            assert body["services"]["redis"]["ok"] is True
    finally:
        stop_redis(server)


class TcpProxy:
    """A loopback proxy we can cut: the database 'goes away' for the web process only."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.open = True
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with suppress(OSError):
                    s.close()

    def cut(self) -> None:
        self.open = False
        for s in self._sockets:
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self._sockets.clear()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self._listener.close()


@contextmanager
def proxied_database() -> Iterator[tuple[TcpProxy, str]]:
    db = connection.settings_dict
    proxy = TcpProxy((db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)))
    user = db.get("USER") or "postgres"
    try:
        yield proxy, f"postgres://{user}@127.0.0.1:{proxy.port}/{db['NAME']}"
    finally:
        proxy.close()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs a networked database (PostgreSQL)")
def test_health_goes_503_when_the_database_is_unreachable_and_recovers():
    fresh_data()
    with proxied_database() as (proxy, url), celery_worker(), daphne(DATABASE_URL=url) as (_, port):
        assert get_health(port)[1]["status"] == "healthy"
        proxy.cut()
        status, body = get_health(port)
        assert status == 503
        assert body["services"]["database"]["ok"] is False
        proxy.restore()
        status, body = get_health(port)
        assert status == 200, body
        assert body["status"] == "healthy"
