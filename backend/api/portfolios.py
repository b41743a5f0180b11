"""Portfolio REST API (docs/protocol.md, "REST"): thin views over the portfolio services and selectors.
The position endpoints are shortcuts that write the ledger (backend/api/transactions.py has
the transactions themselves).

Owner only: another user's portfolio is a 404 on every verb, the same answer as a missing
one. Figures are valued live and rounded to cents only here, at the edge (`to_wire`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.http import Http404
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.market.symbols import InvalidSymbol, symbol_normalize
from backend.portfolios.models import Portfolio, Position
from backend.portfolios.selectors import portfolios_read, position_read
from backend.portfolios.services.portfolios import (
    PortfolioNameTaken,
    PositionExists,
    portfolio_create,
    portfolio_delete,
    portfolio_rename,
    position_add,
    position_change,
    position_get,
    position_remove,
)
from backend.portfolios.services.transactions import FxUnavailable
from backend.realtime.payloads import to_wire

ZERO = Decimal(0)


class PortfolioWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, trim_whitespace=True, allow_blank=False)


def _positive(value: Decimal) -> None:
    if value <= ZERO:
        raise serializers.ValidationError("must be greater than 0")


class PositionChangeSerializer(serializers.Serializer):
    quantity = serializers.DecimalField(max_digits=28, decimal_places=10, required=False, validators=[_positive])
    average_cost = serializers.DecimalField(max_digits=20, decimal_places=6, min_value=ZERO, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("give quantity, average_cost or both")
        return attrs


class PositionCreateSerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=40)
    quantity = serializers.DecimalField(max_digits=28, decimal_places=10, validators=[_positive])
    average_cost = serializers.DecimalField(max_digits=20, decimal_places=6, min_value=ZERO)

    def validate_symbol(self, value: str) -> str:
        try:
            return symbol_normalize(value)
        except InvalidSymbol as exc:
            raise serializers.ValidationError(str(exc)) from exc


def _user(request: Request) -> User:
    user = request.user
    assert isinstance(user, User)  # IsAuthenticated ran first
    return user


def _owned(request: Request, portfolio_id: int) -> Portfolio:
    try:
        return Portfolio.objects.get(pk=portfolio_id, owner=_user(request))
    except Portfolio.DoesNotExist as exc:
        raise Http404("no such portfolio") from exc


def _fx_unavailable(exc: FxUnavailable) -> Response:
    return Response({"error": FxUnavailable.code, "message": str(exc)}, status=status.HTTP_400_BAD_REQUEST)


def _portfolio_body(request: Request, portfolio_id: int) -> Any:
    (portfolio,) = portfolios_read(owner_id=_user(request).pk, portfolio_id=portfolio_id)
    return to_wire(portfolio)


class PortfolioListView(APIView):
    def get(self, request: Request) -> Response:
        return Response(to_wire(portfolios_read(owner_id=_user(request).pk)))

    def post(self, request: Request) -> Response:
        serializer = PortfolioWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            portfolio = portfolio_create(owner=_user(request), name=serializer.validated_data["name"])
        except PortfolioNameTaken as exc:
            return Response({"name": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(_portfolio_body(request, portfolio.pk), status=status.HTTP_201_CREATED)


class PortfolioDetailView(APIView):
    def get(self, request: Request, portfolio_id: int) -> Response:
        return Response(_portfolio_body(request, _owned(request, portfolio_id).pk))

    def patch(self, request: Request, portfolio_id: int) -> Response:
        portfolio = _owned(request, portfolio_id)
        serializer = PortfolioWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            portfolio_rename(portfolio=portfolio, name=serializer.validated_data["name"])
        except PortfolioNameTaken as exc:
            return Response({"name": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(_portfolio_body(request, portfolio.pk))

    def delete(self, request: Request, portfolio_id: int) -> Response:
        portfolio_delete(portfolio=_owned(request, portfolio_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _position_body(request: Request, position: Position) -> Any:
    body = position_read(owner_id=_user(request).pk, portfolio_id=position.portfolio_id, symbol=position.asset.symbol)
    return to_wire(body)


class PositionListView(APIView):
    def post(self, request: Request, portfolio_id: int) -> Response:
        portfolio = _owned(request, portfolio_id)
        serializer = PositionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            position = position_add(
                portfolio=portfolio,
                symbol=data["symbol"],
                quantity=data["quantity"],
                average_cost=data["average_cost"],
            )
        except PositionExists as exc:
            return Response({"symbol": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        except FxUnavailable as exc:
            return _fx_unavailable(exc)
        return Response(_position_body(request, position), status=status.HTTP_201_CREATED)


class PositionDetailView(APIView):
    def _position(self, request: Request, portfolio_id: int, symbol: str) -> Position:
        portfolio = _owned(request, portfolio_id)
        try:
            return position_get(portfolio=portfolio, symbol=symbol)
        except (InvalidSymbol, Position.DoesNotExist) as exc:
            raise Http404("no such position") from exc

    def patch(self, request: Request, portfolio_id: int, symbol: str) -> Response:
        position = self._position(request, portfolio_id, symbol)
        serializer = PositionChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            position = position_change(position=position, **serializer.validated_data)
        except FxUnavailable as exc:
            return _fx_unavailable(exc)
        return Response(_position_body(request, position))

    def delete(self, request: Request, portfolio_id: int, symbol: str) -> Response:
        position_remove(position=self._position(request, portfolio_id, symbol))
        return Response(status=status.HTTP_204_NO_CONTENT)
