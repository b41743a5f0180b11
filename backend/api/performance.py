"""The performance call (docs/returns.md): a thin view over backend.performance. Owner only:
another user's portfolio is a 404, the same answer as a missing one."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.market.symbols import InvalidSymbol, symbol_normalize
from backend.performance.payloads import performance_payload
from backend.performance.selectors import (
    DEFAULT_RANGE,
    RANGES,
    Benchmark,
    UnknownBenchmark,
    benchmark_read,
    performance_read,
)
from backend.performance.sql import utc_today

from .portfolios import _owned


def _unknown_benchmark(message: str) -> Response:
    return Response({"error": UnknownBenchmark.code, "message": message}, status=status.HTTP_400_BAD_REQUEST)


class PerformanceView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("range", str, enum=list(RANGES), default=DEFAULT_RANGE, description="the days measured"),
            OpenApiParameter("benchmark", str, description="a tracked symbol to compare with, e.g. ^GSPC"),
        ],
        responses={
            200: OpenApiResponse(description="returns over the range (docs/returns.md)"),
            400: OpenApiResponse(description="invalid_range or unknown_benchmark"),
        },
    )
    def get(self, request: Request, portfolio_id: int) -> Response:
        portfolio = _owned(request, portfolio_id)
        range_name = request.query_params.get("range") or DEFAULT_RANGE
        if range_name not in RANGES:
            return Response(
                {"error": "invalid_range", "message": f"range must be one of {', '.join(RANGES)}"},
                status=status.HTTP_400_BAD_REQUEST,
            )
        today = utc_today()
        performance = performance_read(portfolio=portfolio, range_name=range_name, today=today)
        benchmark: Benchmark | None = None
        asked = request.query_params.get("benchmark")
        if asked is not None:
            try:
                symbol = symbol_normalize(asked)
                benchmark = benchmark_read(symbol=symbol, start=performance.start, end=performance.end, today=today)
            except InvalidSymbol as exc:
                return _unknown_benchmark(f"{asked!r} is not a symbol: {exc}")
            except UnknownBenchmark as exc:
                return _unknown_benchmark(str(exc))
        return Response(performance_payload(performance, benchmark))
