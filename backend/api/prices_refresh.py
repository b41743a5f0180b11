"""POST /api/prices/refresh/ {"symbols": [...]}: a forced refresh (staff only)."""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.market.services.refresh import prices_refresh_force
from backend.market.symbols import InvalidSymbol, symbol_normalize


class RefreshRequest(serializers.Serializer):
    symbols = serializers.ListField(child=serializers.CharField(max_length=40), required=False, max_length=5000)

    def validate_symbols(self, value: list[str]) -> list[str]:
        try:
            return [symbol_normalize(s) for s in value]
        except InvalidSymbol as error:
            raise serializers.ValidationError(str(error)) from None


class PricesRefreshView(APIView):
    permission_classes = [IsAdminUser]

    def post(self, request: Request) -> Response:
        body = RefreshRequest(data=request.data)
        body.is_valid(raise_exception=True)
        dispatch = prices_refresh_force(symbols=body.validated_data.get("symbols") or None)
        return Response(
            {
                "run_id": dispatch.run_id,
                "task_ids": dispatch.task_ids,
                "symbols": dispatch.symbols,
                "in_flight": dispatch.in_flight,
            },
            status=status.HTTP_202_ACCEPTED,
        )
