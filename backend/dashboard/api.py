"""JSON endpoints: prices (docs/protocol.md, "REST": /api/prices/<symbol>/ and .../history/), and the
dashboard's own watchlist, value-chart and status data. Thin: parse, call, shape."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from rest_framework import status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from backend.market.selectors import quote_cached
from backend.market.symbols import InvalidSymbol, symbol_normalize
from backend.realtime.payloads import to_wire

from . import status_parts
from .ledger_parts import RECENT_DEFAULT, RECENT_MAX, ledger_recent
from .selectors import (
    portfolio_value_series,
    price_history,
    sparkline_series,
    status_overview,
    watchlist_row,
    watchlist_rows,
)
from .services import UnknownSymbol, watchlist_add, watchlist_remove

MAX_DAYS = 365


def _error(code: str, message: str, http_status: int) -> Response:
    return Response({"code": code, "message": message}, status=http_status)


def _days(request: Request, default: int) -> int | Response:
    raw = request.query_params.get("days", str(default))
    try:
        days = int(raw)
    except ValueError:
        return _error("invalid_days", f"days must be a whole number from 1 to {MAX_DAYS}", 400)
    if not 1 <= days <= MAX_DAYS:
        return _error("invalid_days", f"days must be a whole number from 1 to {MAX_DAYS}", 400)
    return days


def _user_id(user: AbstractBaseUser | AnonymousUser) -> int:
    assert user.pk is not None  # IsAuthenticated ran first
    return int(user.pk)


@api_view(["GET"])
def price_detail(request: Request, symbol: str) -> Response:
    try:
        symbol = symbol_normalize(symbol)
    except InvalidSymbol as exc:
        return _error("invalid_symbol", str(exc), 400)
    payload = quote_cached(symbol=symbol)
    if payload is None:
        return _error("not_found", f"no quote for {symbol} yet", 404)
    return Response(to_wire(dict(payload)))


@api_view(["GET"])
def price_history_list(request: Request, symbol: str) -> Response:
    try:
        symbol = symbol_normalize(symbol)
    except InvalidSymbol as exc:
        return _error("invalid_symbol", str(exc), 400)
    days = _days(request, default=7)
    if isinstance(days, Response):
        return days
    points = price_history(symbol=symbol, days=days)
    if points is None:
        return _error("not_found", f"{symbol} is not tracked", 404)
    return Response([to_wire(dict(p)) for p in points])


@api_view(["GET", "POST"])
def watchlist(request: Request) -> Response:
    user_id = _user_id(request.user)
    if request.method == "GET":
        return Response([to_wire(dict(row)) for row in watchlist_rows(user_id=user_id)])
    data: Any = request.data
    raw = data.get("symbol") if isinstance(data, dict) else None
    if not isinstance(raw, str):
        return _error("invalid_symbol", 'send {"symbol": "AAPL"}: symbol must be a string', 400)
    try:
        item = watchlist_add(user_id=user_id, symbol=raw)
    except InvalidSymbol as exc:
        return _error("invalid_symbol", str(exc), 400)
    except UnknownSymbol as exc:
        return _error("unknown_symbol", str(exc), 400)
    row = to_wire(dict(watchlist_row(asset=item.asset)))
    row["history"] = sparkline_series(symbols=[item.asset.symbol])[item.asset.symbol]
    return Response(row, status=status.HTTP_201_CREATED)


@api_view(["DELETE"])
def watchlist_item(request: Request, symbol: str) -> Response:
    try:
        removed = watchlist_remove(user_id=_user_id(request.user), symbol=symbol)
    except InvalidSymbol as exc:
        return _error("invalid_symbol", str(exc), 400)
    if not removed:
        return _error("not_found", "that symbol is not on your watchlist", 404)
    return Response(status=status.HTTP_204_NO_CONTENT)


@api_view(["GET"])
def portfolio_values(request: Request, portfolio_id: int) -> Response:
    days = _days(request, default=7)
    if isinstance(days, Response):
        return days
    series = portfolio_value_series(portfolio_id=portfolio_id, user_id=_user_id(request.user), days=days)
    if series is None:
        return _error("not_found", "no such portfolio", 404)
    return Response(series)


@api_view(["GET"])
def portfolio_transactions(request: Request, portfolio_id: int) -> Response:
    """The ledger panel's page: the latest transactions, newest first, and the ledger's size."""
    raw = request.query_params.get("limit", str(RECENT_DEFAULT))
    if not raw.isdigit() or not 1 <= int(raw) <= RECENT_MAX:
        return _error("invalid_limit", f"limit must be a whole number from 1 to {RECENT_MAX}", 400)
    page = ledger_recent(portfolio_id=portfolio_id, user_id=_user_id(request.user), limit=int(raw))
    if page is None:
        return _error("not_found", "no such portfolio", 404)
    return Response(page)


@api_view(["GET"])
@permission_classes([IsAdminUser])
def status_data(request: Request) -> Response:
    overview = status_overview()
    overview["connections"] = status_parts.connection_stats()
    overview["source_health"] = status_parts.source_health()
    overview["alerts"] = status_parts.alert_stats()
    overview["stream"] = status_parts.stream_stats()
    return Response(overview)
