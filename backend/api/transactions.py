"""Transactions REST API (docs/protocol.md, "Transactions" and "Import"): thin views over the
ledger services. Owner only: another user's portfolio or transaction is a 404, the same
answer as a missing one."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.market.symbols import InvalidSymbol, symbol_normalize
from backend.portfolios.models import Transaction
from backend.portfolios.selectors import transaction_read, transactions_read
from backend.portfolios.services.csv_import import MAX_LINES, transactions_import
from backend.portfolios.services.transactions import (
    FxUnavailable,
    InsufficientQuantity,
    TransactionInput,
    TransactionInvalid,
    transaction_check,
    transaction_delete,
    transaction_record,
)

from .portfolios import _owned

# A CSV line of the contract's columns is well under 200 bytes.
MAX_UPLOAD_BYTES = MAX_LINES * 400


def _decimal(digits: int, places: int) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=digits, decimal_places=places, required=False, allow_null=True)


def _text(length: int) -> serializers.CharField:
    return serializers.CharField(max_length=length, required=False, allow_blank=True, allow_null=True)


class TransactionWriteSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=Transaction.Type.values)
    symbol = _text(40)
    quantity = _decimal(28, 10)
    price = _decimal(20, 6)
    fee = _decimal(20, 6)
    amount = _decimal(24, 6)
    ratio = _text(41)
    currency = _text(3)
    fx_rate = _decimal(24, 10)
    executed_at = serializers.DateTimeField(required=False, allow_null=True)
    external_id = _text(100)

    def validate_symbol(self, value: str | None) -> str | None:
        if not value:
            return None
        try:
            return symbol_normalize(value)
        except InvalidSymbol as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        data = TransactionInput(**{k: v for k, v in attrs.items() if v is not None and v != ""})
        errors = transaction_check(data)
        if errors:
            raise serializers.ValidationError({k: [v] for k, v in errors.items()})
        return {"data": data}


def _refused(exc: Exception) -> Response:
    if isinstance(exc, FxUnavailable):
        return Response({"error": FxUnavailable.code, "message": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, TransactionInvalid):
        return Response({k: [v] for k, v in exc.errors.items()}, status=status.HTTP_400_BAD_REQUEST)
    return Response({"error": InsufficientQuantity.code, "message": str(exc)}, status=status.HTTP_400_BAD_REQUEST)


class TransactionListView(APIView):
    def get(self, request: Request, portfolio_id: int) -> Response:
        portfolio = _owned(request, portfolio_id)
        return Response(transactions_read(portfolio_id=portfolio.pk, symbol=request.query_params.get("symbol")))

    def post(self, request: Request, portfolio_id: int) -> Response:
        portfolio = _owned(request, portfolio_id)
        serializer = TransactionWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            recorded = transaction_record(portfolio=portfolio, data=serializer.validated_data["data"])
        except (FxUnavailable, TransactionInvalid, InsufficientQuantity) as exc:
            return _refused(exc)
        body = transaction_read(portfolio_id=portfolio.pk, transaction_id=recorded.transaction.pk)
        return Response(body, status=status.HTTP_201_CREATED if recorded.created else status.HTTP_200_OK)


class TransactionDetailView(APIView):
    def _transaction(self, request: Request, portfolio_id: int, transaction_id: int) -> Transaction:
        portfolio = _owned(request, portfolio_id)
        try:
            return Transaction.objects.select_related("portfolio").get(pk=transaction_id, portfolio=portfolio)
        except Transaction.DoesNotExist as exc:
            raise Http404("no such transaction") from exc

    def get(self, request: Request, portfolio_id: int, transaction_id: int) -> Response:
        row = self._transaction(request, portfolio_id, transaction_id)
        return Response(transaction_read(portfolio_id=row.portfolio_id, transaction_id=row.pk))

    def delete(self, request: Request, portfolio_id: int, transaction_id: int) -> Response:
        row = self._transaction(request, portfolio_id, transaction_id)
        try:
            transaction_delete(transaction_row=row)
        except InsufficientQuantity as exc:
            body = {"error": InsufficientQuantity.code, "message": str(exc)}
            return Response(body, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TransactionImportView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    def post(self, request: Request, portfolio_id: int) -> Response:
        portfolio = _owned(request, portfolio_id)
        upload = request.FILES.get("file")
        if upload is None:
            return Response({"file": ["required: a CSV file"]}, status=status.HTTP_400_BAD_REQUEST)
        if upload.size is not None and upload.size > MAX_UPLOAD_BYTES:
            message = f"the file is over {MAX_UPLOAD_BYTES // 1_000_000} MB"
            body = {"created": 0, "duplicates": 0, "errors": [{"line": 0, "message": message}]}
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        form = request.data if isinstance(request.data, dict) else {}
        preset = form.get("format") or request.query_params.get("format") or None
        result = transactions_import(portfolio=portfolio, content=upload.read(), preset=preset)
        body = {"created": result.created, "duplicates": result.duplicates, "errors": result.errors}
        return Response(body, status=status.HTTP_400_BAD_REQUEST if result.errors else status.HTTP_200_OK)
