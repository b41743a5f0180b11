from __future__ import annotations

import logging

import pytest

from backend.ops.logging import REDACTED, ContextFilter, RedactFilter, connection_id_var, redact


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("Authorization: Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"),
        ("headers [(b'cookie', b'sessionid=abcdef1234567890; csrftoken=zzzzzzzzzzzz')]", "abcdef1234567890"),
        ("POST username=demo&password=hunter2-secret&next=/", "hunter2-secret"),
        ("GET /v7/finance/quote?symbols=AAPL&crumb=Xy12abCD.9", "Xy12abCD.9"),
        ("GET /query?function=GLOBAL_QUOTE&symbol=IBM&apikey=DEMOKEY123", "DEMOKEY123"),
        ("GET /api/v1/quote?symbol=AAPL&token=fh-secret-key", "fh-secret-key"),
        ("broker redis://:s3cretpw@redis.example.com:6379/0", "s3cretpw"),
        ("{'password': 'pw-in-a-dict'}", "pw-in-a-dict"),
    ],
)
def test_redact_removes_every_kind_of_secret(raw, secret):
    cleaned = redact(raw)
    assert secret not in cleaned
    assert REDACTED in cleaned


def test_redact_leaves_ordinary_text_alone():
    text = "fetched 50 symbols from yahoo in 0.21 s (batch 3/3)"
    assert redact(text) == text


def test_redact_filter_scrubs_arguments_before_formatting():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "login with %s", ("password=abc12345",), None)
    RedactFilter().filter(record)
    assert "abc12345" not in record.getMessage()


def test_context_filter_adds_the_connection_id_of_the_current_consumer():
    token = connection_id_var.set("conn-123")
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
        ContextFilter().filter(record)
    finally:
        connection_id_var.reset(token)
    assert getattr(record, "connection_id", None) == "conn-123"
    assert getattr(record, "task_id", "missing") is None
