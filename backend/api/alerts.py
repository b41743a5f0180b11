"""Alerts and notifications REST API (docs/protocol.md, "Alerts"): thin views over the alert
services and selectors. Owner only: another user's alert or notification is a 404 on every
verb, the same answer as a missing one."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.http import Http404
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.alerts.models import Alert, AlertEvent
from backend.alerts.selectors import (
    alert_owned,
    alert_read,
    alerts_read,
    notification_body,
    notification_owned,
    notifications_read,
)
from backend.alerts.services.alerts import (
    AlertLimitReached,
    alert_create,
    alert_delete,
    alert_update,
    notification_mark_read,
)
from backend.market.symbols import InvalidSymbol, symbol_normalize

LIMIT_ANSWER = {"error": "alert_limit", "message": "you have the maximum number of active alerts"}


class AlertCreateSerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=40)
    condition = serializers.ChoiceField(choices=Alert.Condition.choices)
    threshold = serializers.DecimalField(max_digits=20, decimal_places=6)
    repeat = serializers.ChoiceField(choices=Alert.Repeat.choices, default=Alert.Repeat.ONCE)

    def validate_symbol(self, value: str) -> str:
        try:
            return symbol_normalize(value)
        except InvalidSymbol as exc:
            raise serializers.ValidationError(str(exc)) from exc


class AlertChangeSerializer(serializers.Serializer):
    condition = serializers.ChoiceField(choices=Alert.Condition.choices, required=False)
    threshold = serializers.DecimalField(max_digits=20, decimal_places=6, required=False)
    repeat = serializers.ChoiceField(choices=Alert.Repeat.choices, required=False)
    active = serializers.BooleanField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("give condition, threshold, repeat or active")
        return attrs


def _user(request: Request) -> User:
    user = request.user
    assert isinstance(user, User)  # IsAuthenticated ran first
    return user


def _owned(request: Request, alert_id: int) -> Alert:
    try:
        return alert_owned(owner_id=_user(request).pk, alert_id=alert_id)
    except Alert.DoesNotExist as exc:
        raise Http404("no such alert") from exc


class AlertListView(APIView):
    def get(self, request: Request) -> Response:
        symbol = request.query_params.get("symbol")
        if symbol:
            try:
                symbol = symbol_normalize(symbol)
            except InvalidSymbol as exc:
                return Response({"symbol": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(alerts_read(owner_id=_user(request).pk, symbol=symbol or None))

    def post(self, request: Request) -> Response:
        serializer = AlertCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            alert = alert_create(owner=_user(request), **serializer.validated_data)
        except AlertLimitReached:
            return Response(LIMIT_ANSWER, status=status.HTTP_400_BAD_REQUEST)
        return Response(alert_read(owner_id=alert.owner_id, alert_id=alert.pk), status=status.HTTP_201_CREATED)


class AlertDetailView(APIView):
    def get(self, request: Request, alert_id: int) -> Response:
        alert = _owned(request, alert_id)
        return Response(alert_read(owner_id=alert.owner_id, alert_id=alert.pk))

    def patch(self, request: Request, alert_id: int) -> Response:
        alert = _owned(request, alert_id)
        serializer = AlertChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            alert_update(alert=alert, **serializer.validated_data)
        except AlertLimitReached:
            return Response(LIMIT_ANSWER, status=status.HTTP_400_BAD_REQUEST)
        return Response(alert_read(owner_id=alert.owner_id, alert_id=alert.pk))

    def delete(self, request: Request, alert_id: int) -> Response:
        alert_delete(alert=_owned(request, alert_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class NotificationListView(APIView):
    def get(self, request: Request) -> Response:
        unread = request.query_params.get("unread", "").lower() in {"1", "true", "yes"}
        return Response(notifications_read(owner_id=_user(request).pk, unread=unread))


class NotificationReadView(APIView):
    def post(self, request: Request, event_id: int) -> Response:
        try:
            event = notification_owned(owner_id=_user(request).pk, event_id=event_id)
        except AlertEvent.DoesNotExist as exc:
            raise Http404("no such notification") from exc
        return Response(notification_body(notification_mark_read(event=event)))
