"""/ws/realtime/ through the real middleware stack (WebsocketCommunicator): the envelope and
its per-connection seq, and the error code of every malformed message, after which the
connection stays open."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.consumers.conftest import communicator, connected, receive, run, send

pytestmark = pytest.mark.django_db(transaction=True)


def test_connection_message_has_the_envelope_and_seq_counts_per_connection(user, token):
    async def scenario():
        comm = communicator(token=token)
        hello = await connected(comm)
        assert set(hello) == {"type", "data", "timestamp", "connection_id", "seq"}
        assert hello["seq"] == 1
        assert hello["data"] == {
            "status": "connected",
            "connection_id": hello["connection_id"],
            "authenticated": True,
            "user_id": user.pk,
        }
        uuid.UUID(hello["connection_id"])
        assert hello["timestamp"].endswith("Z")
        await send(comm, "ping")
        pong = await receive(comm)
        assert (pong["type"], pong["data"], pong["seq"]) == ("pong", {}, 2)
        await comm.send_to(text_data=json.dumps({"type": "ping"}))  # data may be omitted
        assert (await receive(comm))["seq"] == 3
        await comm.disconnect()

    run(scenario)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"data": {}}', "invalid_message"),
        ('{"type": "subscribe_asset", "data": "AAPL"}', "invalid_message"),
        ('{"type": "subscribe_asset", "data": {}}', "invalid_message"),
        ('{"type": "subscribe_portfolio", "data": {"portfolio_id": "x"}}', "invalid_message"),
        ('{"type": "subscribe_portfolio", "data": {"portfolio_id": true}}', "invalid_message"),
        ('{"type": "subscribe_portfolio", "data": {"portfolio_id": -3}}', "invalid_message"),
        ('{"type": "shout", "data": {}}', "unknown_type"),
        ('{"type": "subscribe_asset", "data": {"symbol": "BAD SYMBOL"}}', "invalid_symbol"),
        ('{"type": "subscribe_asset", "data": {"symbol": "ABCDEFGHIJKLMNOPQRSTU"}}', "invalid_symbol"),
        ('{"type": "unsubscribe_asset", "data": {"symbol": 42}}', "invalid_symbol"),
    ],
)
def test_malformed_messages_get_an_error_code_and_the_connection_stays_open(token, frame, code):
    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        await comm.send_to(text_data=frame)
        error = await receive(comm)
        assert error["type"] == "error"
        assert error["data"]["code"] == code
        assert error["data"]["message"]
        await send(comm, "ping")
        assert (await receive(comm))["type"] == "pong"
        await comm.disconnect()

    run(scenario)


def test_binary_frame_is_an_invalid_message(token):
    async def scenario():
        comm = communicator(token=token)
        await connected(comm)
        await comm.send_to(bytes_data=b"\x00\x01")
        assert (await receive(comm))["data"]["code"] == "invalid_message"
        await comm.disconnect()

    run(scenario)
