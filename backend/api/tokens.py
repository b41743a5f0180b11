"""API tokens: get one (POST /api/auth/token/, throttled), list and revoke your own
(GET|DELETE /api/auth/tokens/). docs/protocol.md, "Token".

DRF's authtoken keeps one token per user (its primary key is the key itself); this API keeps
that model, so the list has at most one entry, and a POST after a revoke makes a new key.
A revoked token stops working over REST at once (every request looks it up) and over
WebSocket at the next credential re-check (consumers/auth.py, 4401).
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .logins import login_attempt, retry_after_text

# A token is named by the first 8 characters of its key: enough to tell a user's tokens
# apart, and it leaves 128 bits of the key unknown to whoever reads a listing.
ID_LENGTH = 8
ID_PATTERN = re.compile(r"^[0-9a-f]{8}$")


class TokenObtainView(ObtainAuthToken):
    """POST {"username", "password"} -> {"token"}; more than the allowed failed attempts for a
    username or from an address -> 429 with Retry-After (backend/api/logins.py)."""

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = request.data
        username = data.get("username") if hasattr(data, "get") else None
        with login_attempt(request._request, username) as refusal:
            if refusal is None:
                return super().post(request, *args, **kwargs)
        assert refusal is not None
        wait = refusal.retry_after
        raise Throttled(wait=wait, detail=f"Too many failed login attempts. Try again in {retry_after_text(wait)}.")


class TokenInfo(serializers.Serializer):
    id = serializers.CharField(help_text="the first 8 characters of the key")
    created = serializers.DateTimeField()
    current = serializers.BooleanField(help_text="whether this request authenticated with it")


def _owner(request: Request) -> User:
    user = request.user
    assert isinstance(user, User)  # IsAuthenticated ran first
    return user


def _token_id(token: Token) -> str:
    return str(token.key)[:ID_LENGTH]


class TokenListView(APIView):
    """The caller's own tokens."""

    @extend_schema(responses=TokenInfo(many=True))
    def get(self, request: Request) -> Response:
        current = request.auth.key if isinstance(request.auth, Token) else None
        tokens = Token.objects.filter(user=_owner(request)).order_by("created")
        rows = [{"id": _token_id(t), "created": t.created, "current": t.key == current} for t in tokens]
        return Response(TokenInfo(rows, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "id",
                str,
                required=False,
                description="the token to revoke (its `id` from the list); "
                "default: the token this request authenticated with",
            )
        ],
        request=inline_serializer("TokenRevoke", {"id": serializers.CharField(required=False)}),
        responses={
            204: OpenApiResponse(description="revoked"),
            400: OpenApiResponse(description="a malformed id, or no id on a request not made with a token"),
            404: OpenApiResponse(description="you have no token with that id"),
        },
    )
    def delete(self, request: Request) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        wanted = request.query_params.get("id") or body.get("id")
        if wanted is None or wanted == "":
            if not isinstance(request.auth, Token):
                return Response(
                    {"id": ["Name the token to revoke: this request did not authenticate with one."]},
                    status=status.HTTP_400_BAD_REQUEST,
                )
            request.auth.delete()
            return Response(status=status.HTTP_204_NO_CONTENT)
        if not isinstance(wanted, str) or not ID_PATTERN.match(wanted):
            return Response({"id": [f"An id is {ID_LENGTH} hex characters."]}, status=status.HTTP_400_BAD_REQUEST)
        deleted, _ = Token.objects.filter(user=_owner(request), key__startswith=wanted).delete()
        if not deleted:
            return Response({"detail": "You have no token with that id."}, status=status.HTTP_404_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)
