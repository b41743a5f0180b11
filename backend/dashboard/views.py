from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from backend.market.symbols import SYMBOL_RE
from backend.realtime.payloads import to_wire

from .selectors import dashboard_portfolios, portfolio_value_series, sparkline_series, watchlist_rows


def _user_id(request: HttpRequest) -> int:
    assert request.user.pk is not None  # login_required ran first
    return int(request.user.pk)


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    user_id = _user_id(request)
    portfolios = dashboard_portfolios(user_id=user_id)
    watchlist = watchlist_rows(user_id=user_id)
    symbols = [row["symbol"] for card in portfolios for row in card["positions"]] + [w["symbol"] for w in watchlist]
    charts = {
        card["id"]: portfolio_value_series(portfolio_id=card["id"], user_id=user_id, days=1) or []
        for card in portfolios
    }
    initial = {
        "portfolios": [
            {"id": c["id"], "summary": to_wire(dict(c["summary"])), "positions": to_wire(c["positions"])}
            for c in portfolios
        ],
        "watchlist": [to_wire(dict(w)) for w in watchlist],
        "sparklines": sparkline_series(symbols=symbols),
        "charts": charts,
        "symbol_pattern": SYMBOL_RE.pattern,
    }
    context = {"portfolios": portfolios, "watchlist": watchlist, "initial": initial, "flower_url": settings.FLOWER_URL}
    return render(request, "dashboard/index.html", context)


@login_required
def status_page(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("staff only")
    return render(request, "dashboard/status.html", {"flower_url": settings.FLOWER_URL})
