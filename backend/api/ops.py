"""Operator endpoints: health (public), realtime status and connections (staff), metrics."""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.ops.health import health_report
from backend.ops.metrics import TickerflowCollector
from backend.ops.status import connections_report, realtime_status


class HealthView(APIView):
    # No authentication at all: the load balancer asks, and a dead database must not turn
    # the answer into a 500 from the session or token lookup.
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            200: OpenApiResponse(description="healthy or degraded"),
            503: OpenApiResponse(description="unhealthy"),
        }
    )
    def get(self, request: Request) -> Response:
        status, body = health_report()
        return Response(body, status=503 if status == "unhealthy" else 200)


class RealtimeStatusView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: OpenApiResponse(description="pipeline status")})
    def get(self, request: Request) -> Response:
        return Response(realtime_status())


class RealtimeConnectionsView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: OpenApiResponse(description="open WebSocket connections")})
    def get(self, request: Request) -> Response:
        return Response(connections_report())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text. With METRICS_TOKEN set, `Authorization: Bearer <token>` is accepted;
    staff sessions always are."""
    header = request.headers.get("Authorization", "")
    token_ok = bool(settings.METRICS_TOKEN) and hmac.compare_digest(header, f"Bearer {settings.METRICS_TOKEN}")
    user = getattr(request, "user", None)
    if not token_ok and not (user is not None and user.is_active and user.is_staff):
        return HttpResponse("authentication required\n", status=401, content_type="text/plain")
    registry = CollectorRegistry()
    registry.register(TickerflowCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
