"""schemathesis against /api/schema/: generated requests to every documented operation,
as a staff user with a token, find no server error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token

from config.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def staff_token(db) -> Iterator[str]:
    # Calling the WSGI app directly would close the test's database connection at the end of
    # each request; Django's own test client disconnects this handler the same way.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    user = User.objects.create_user("fuzz-staff", password="fuzz-pass-123", is_staff=True)
    yield Token.objects.create(user=user).key
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def test_the_schema_documents_the_contract_routes():
    paths = set(schema.raw_schema["paths"])
    assert {"/api/health/", "/api/auth/token/", "/api/realtime/status/", "/api/realtime/connections/"} <= paths


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_with_a_server_error(case, staff_token):
    if case.path == "/api/health/":
        pytest.skip("health is exercised against real processes in test_health_live.py")
    response = case.call(headers={"Authorization": f"Token {staff_token}"})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    )
