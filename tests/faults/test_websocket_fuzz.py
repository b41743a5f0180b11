"""Property-based fuzzing of client messages through the real consumer stack (session + token
middleware, the real Redis layer and registry): every input gets a contract answer or a
contract close code; never 1011, never an exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token

from tests.consumers.conftest import communicator, connected, run

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

TYPES = ["ping", "subscribe_asset", "unsubscribe_asset", "subscribe_portfolio", "unsubscribe_portfolio"]
ERROR_CODES = {"invalid_json", "invalid_message", "unknown_type", "invalid_symbol", "unknown_symbol", "not_found",
               "subscription_limit"}  # fmt: skip
ACKS = {"pong", "subscribed", "unsubscribed"}
PUSHED = {"asset_update", "portfolio_update", "position_update", "notification"}
CLOSE_CODES = {4401, 4403, 4408, 4413, 4429}

json_leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30)
json_value = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
symbolish = st.text(alphabet="ABCXYZ019.-^=/ a\u00e9\u0000", max_size=24) | json_value
portfolio_idish = st.integers(-5, 2**64) | st.floats() | st.text(max_size=10) | json_value
structured = st.builds(
    lambda kind, data: {"type": kind, "data": data},
    st.sampled_from(TYPES) | st.text(max_size=20),
    st.fixed_dictionaries({}, optional={"symbol": symbolish, "portfolio_id": portfolio_idish}) | json_value,
)
valid = st.one_of(
    st.builds(lambda k, sym: {"type": k, "data": {"symbol": sym}}, st.sampled_from(TYPES[1:3]),
              st.from_regex(r"[A-Za-z0-9.^=/-]{1,20}", fullmatch=True)),
    st.builds(lambda k, pid: {"type": k, "data": {"portfolio_id": pid}}, st.sampled_from(TYPES[3:]), st.integers(1, 50)),
    st.just({"type": "ping", "data": {}}),
)  # fmt: skip
frame = (
    valid.map(json.dumps)
    | st.text(max_size=200)
    | json_value.map(json.dumps)
    | structured.map(json.dumps)
    | st.dictionaries(st.text(max_size=5), json_value).map(json.dumps)
    | st.text(min_size=1100, max_size=1300)  # over WEBSOCKET_MESSAGE_SIZE_LIMIT: 4413
    | st.binary(max_size=64)
)


@pytest.fixture
def token() -> str:
    return Token.objects.create(user=User.objects.create_user("fuzzer")).key


tried = {"inputs": 0, "errors": 0, "acks": 0, "closes": 0}


async def _answer(comm: WebsocketCommunicator, pongs: int) -> tuple[list[dict[str, Any]], int | None]:
    """Frames up to the pong of the ping sent after the input, or the close code."""
    frames: list[dict[str, Any]] = []
    while True:
        output = await comm.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            return frames, output.get("code")
        message = json.loads(output["text"])
        frames.append(message)
        if message["type"] == "pong":
            pongs -= 1
            if pongs == 0:
                return frames[:-1], None


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inputs=st.lists(frame, min_size=1, max_size=8))
def test_every_fuzzed_client_message_gets_a_contract_answer_or_a_contract_close(token, settings, inputs):
    settings.WEBSOCKET_RATE_LIMIT_MESSAGES_PER_MINUTE = 100_000

    async def scenario() -> None:
        comm = communicator(token=token)
        await connected(comm)
        for item in inputs:
            tried["inputs"] += 1
            # send_input, not send_to: an empty frame is a valid input too.
            key = "bytes" if isinstance(item, bytes) else "text"
            await comm.send_input({"type": "websocket.receive", key: item})
            await comm.send_to(text_data=json.dumps({"type": "ping", "data": {}}))
            is_ping = _is_ping(item)
            frames, code = await _answer(comm, 2 if is_ping else 1)
            if code is not None:
                tried["closes"] += 1
                assert code in CLOSE_CODES, (item, code)
                assert code == 4413, (item, code)
                assert len(item) > 1024, (item, code)
                return
            answers = [f for f in frames if f["type"] not in PUSHED]
            if is_ping:
                assert [f["type"] for f in answers] == ["pong"], (item, frames)
                continue
            assert answers, f"no answer to {item!r}"
            kinds = {f["type"] for f in answers}
            assert kinds <= ACKS | {"error"}, (item, frames)
            for f in answers:
                assert set(f) >= {"type", "data", "timestamp", "connection_id", "seq"}, f
                if f["type"] == "error":
                    tried["errors"] += 1
                    assert f["data"]["code"] in ERROR_CODES, f
                else:
                    tried["acks"] += 1
        await comm.disconnect()

    run(scenario)


def _is_ping(item: str | bytes) -> bool:
    if isinstance(item, bytes):
        return False
    try:
        message = json.loads(item)
    except ValueError:
        return False
    if not isinstance(message, dict) or message.get("type") != "ping":
        return False
    data = message.get("data")
    return data is None or isinstance(data, dict)  # the schema reads a null `data` as {}


def test_zz_report_fuzz_inputs():
    print(f"\nwebsocket fuzz: {tried}")
    assert tried["inputs"] >= 200
