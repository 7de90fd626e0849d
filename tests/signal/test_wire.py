"""The wire format and the credentials: vectors, round trips, arbitrary input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servers.signal.credentials import (
    hash_password,
    issue_token,
    turn_rest_credentials,
    verify_password,
    verify_token,
)
from servers.signal.protocol import CLIENT_SCHEMAS, Message, SignalParseError, encode, parse


def test_turn_rest_vector():
    # The published check value: secret crypt1c, username 2145913200.
    username, password = turn_rest_credentials("crypt1c", "", 2145913200)
    assert username == "2145913200"
    assert password == "cLwpKS2/9bWHf+agUImD47PIXNE="
    username, _ = turn_rest_credentials("crypt1c", "alice", 2145913200)
    assert username == "2145913200:alice"


def test_password_hash_is_salted_scrypt_and_verifies():
    h1, h2 = hash_password("hunter2hunter2"), hash_password("hunter2hunter2")
    assert h1 != h2 and h1.startswith("scrypt$16384$8$1$")
    assert verify_password("hunter2hunter2", h1)
    assert not verify_password("hunter2hunter3", h1)
    assert not verify_password("x", "garbage")


def test_tokens_verify_expire_and_resist_forgery():
    token = issue_token(b"k", "alice", 2000)
    assert verify_token(b"k", token, 1999) == "alice"
    assert verify_token(b"k", token, 2001) is None
    assert verify_token(b"other", token, 1999) is None
    forged = token.replace("alice", "mallory")
    assert verify_token(b"k", forged, 1999) is None


@given(st.text(max_size=200) | st.binary(max_size=200))
@settings(max_examples=300)
def test_arbitrary_input_gives_only_the_parse_error(data):
    try:
        parse(data)
    except SignalParseError as exc:
        assert isinstance(exc.code, int) and exc.reason
        return


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


@given(st.sampled_from(sorted(CLIENT_SCHEMAS)), st.dictionaries(st.text(max_size=12), json_values, max_size=5),
       st.one_of(st.none(), st.text(max_size=70), st.integers()))
@settings(max_examples=300)
def test_arbitrary_payloads_give_only_the_parse_error(kind, payload, message_id):
    text = json.dumps({"v": 1, "type": kind, "id": message_id, "payload": payload})
    try:
        message = parse(text)
    except SignalParseError:
        return
    assert message.type == kind and message.payload == payload


@given(st.sampled_from(["ack", "call.incoming", "presence"]), st.one_of(st.none(), st.text(max_size=10)),
       st.dictionaries(st.text(max_size=10), json_values, max_size=5), st.one_of(st.none(), st.integers(0, 2**40)))
def test_encode_round_trips(kind, message_id, payload, seq):
    obj = json.loads(encode(kind, message_id, payload, seq))
    assert obj["v"] == 1 and obj["type"] == kind and obj["id"] == message_id and obj["payload"] == payload
    assert obj.get("seq") == seq


def test_valid_message_round_trip():
    text = '{"v":1,"type":"call.invite","id":"c1","payload":{"to":"bob_1","media":["audio","screen"]}}'
    assert parse(text) == Message("call.invite", "c1", {"to": "bob_1", "media": ["audio", "screen"]})


@pytest.mark.parametrize("media", [[], ["audio", "audio"], ["audio", "video", "screen", "audio"], "audio", [1]])
def test_media_lists_are_checked(media):
    with pytest.raises(SignalParseError):
        parse(json.dumps({"v": 1, "type": "call.invite", "payload": {"to": "bob_1", "media": media}}))


def test_an_sdp_takes_up_to_48_kib():
    """A call-server offer (27 sections, the camera as three simulcast layers) fits; a larger one is refused
    by the schema, inside the socket's 64 KiB frame limit."""
    def room_media(size: int) -> str:
        return json.dumps({"v": 1, "type": "room.media", "payload": {"room_id": "r1", "sdp": "v" * size}})

    assert parse(room_media(48 * 1024)).payload["sdp"] == "v" * 48 * 1024
    with pytest.raises(SignalParseError):
        parse(room_media(48 * 1024 + 1))
