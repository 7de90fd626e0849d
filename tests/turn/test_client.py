"""The TURN client core under a fake clock, against scripted server answers.

The answers are built here from the RFC's rules; tests/turn/test_client_interop.py
runs the same client against coturn.
"""

import pytest
from hypothesis import given, strategies as st

from netcore.errors import UsageError
from netcore.net import Event, Receive
from netcore.stun import attributes as sa
from netcore.stun.credentials import long_term_key
from netcore.stun.message import Message, MessageClass
from netcore.turn import wire as w
from netcore.turn.client import (
    AllocationClosed,
    AllocationCreated,
    AllocationFailed,
    AllocationLost,
    AllocationRefreshed,
    ChannelBound,
    DataReceived,
    PermissionCreated,
    PermissionFailed,
    TurnClient,
    TurnClientEvent,
    TurnClientState,
)
from netcore.turn.wire import encode_channel_data, parse_channel_data

SERVER = ("192.0.2.10", 3478)
RELAYED = ("192.0.2.10", 50000)
MAPPED = ("198.51.100.4", 61000)
PEER = ("203.0.113.9", 7000)
KEY = long_term_key("alice", "example.org", "secret")


class Script:
    """Plays the server side of one client, answering what it sends."""

    def __init__(self, client: TurnClient):
        self.client = client
        self.now = 0.0

    def sent(self) -> list[bytes]:
        out = []
        while (item := self.client.poll_transmit()) is not None:
            assert item.destination == SERVER and item.source is None
            out.append(item.data)
        return out

    def request(self) -> Message:
        [raw] = self.sent()
        message = Message.parse(raw)
        assert message.message_class == MessageClass.REQUEST and message.check_fingerprint()
        return message

    def reply(self, message: Message, key: bytes | None = KEY) -> None:
        self.client.handle_datagram(Receive(message.encode(key, fingerprint=True), SERVER), self.now)

    def events(self) -> list:
        out = []
        while (event := self.client.poll_event()) is not None:
            out.append(event)
        return out

    def allocate(self) -> None:
        self.client.allocate(self.now)
        first = self.request()
        assert sa.USERNAME not in first and first.get(w.REQUESTED_TRANSPORT) == 17
        challenge = first.error_response(401, "Unauthorized").add(sa.REALM, "example.org").add(sa.NONCE, "n1")
        self.reply(challenge, key=None)
        second = self.request()
        assert second.get(sa.USERNAME) == "alice" and second.get(sa.NONCE) == "n1"
        assert second.check_integrity(KEY)
        ok = second.response().add(w.XOR_RELAYED_ADDRESS, RELAYED).add(sa.XOR_MAPPED_ADDRESS, MAPPED)
        self.reply(ok.add(w.LIFETIME, 600))
        assert self.events() == [AllocationCreated(RELAYED, MAPPED, 600)]


@pytest.fixture
def script():
    return Script(TurnClient(SERVER, "alice", "secret"))


def test_allocate_through_the_401_challenge(script):
    script.allocate()
    assert script.client.relayed_address == RELAYED and script.client.state is TurnClientState.ALLOCATED


def test_stale_nonce_is_retried_with_the_new_one(script):
    script.allocate()
    script.client.refresh(script.now)
    request = script.request()
    script.reply(request.error_response(438, "Stale Nonce").add(sa.REALM, "example.org").add(sa.NONCE, "n2"),
                 key=None)
    again = script.request()
    assert again.get(sa.NONCE) == "n2" and again.check_integrity(KEY)
    script.reply(again.response().add(w.LIFETIME, 600))
    assert script.events() == [AllocationRefreshed(600)]


def test_refused_credentials_end_the_allocation_attempt():
    script = Script(TurnClient(SERVER, "alice", "wrong"))
    script.client.allocate(0.0)
    for _ in range(3):
        request = script.request()
        script.reply(request.error_response(401, "Unauthorized").add(sa.REALM, "r").add(sa.NONCE, "n"), key=None)
    assert script.sent() == []
    assert script.events() == [AllocationFailed(401, "Unauthorized")]
    assert script.client.state is TurnClientState.FAILED


def test_error_answers_without_integrity_are_ignored_after_authentication(script):
    script.allocate()
    script.client.refresh(script.now)
    request = script.request()
    script.reply(request.error_response(437, "Allocation Mismatch"), key=None)  # unsigned: ignored
    assert script.events() == []
    script.reply(request.error_response(437, "Allocation Mismatch"))
    assert script.events() == [AllocationLost(437, "Allocation Mismatch")]
    assert script.client.next_deadline() is None  # nothing left to refresh


def test_refresh_happens_a_minute_before_expiry(script):
    script.allocate()
    assert script.client.next_deadline() == pytest.approx(540.0)
    script.now = 540.0
    script.client.handle_timeout(script.now)
    request = script.request()
    assert request.method == w.REFRESH and request.get(w.LIFETIME) == 600


def test_send_installs_a_permission_then_relays_held_datagrams(script):
    script.allocate()
    script.client.send_to(b"one", PEER, script.now)
    script.client.send_to(b"two", PEER, script.now)
    request = script.request()
    assert request.method == w.CREATE_PERMISSION
    assert request.get(w.XOR_PEER_ADDRESS) == (PEER[0], 0)
    script.reply(request.response())
    sent = [Message.parse(raw) for raw in script.sent()]
    assert [(m.method, m.message_class) for m in sent] == [(w.SEND, MessageClass.INDICATION)] * 2
    assert [m.get(w.DATA_ATTR) for m in sent] == [b"one", b"two"]
    assert sent[0].get(w.XOR_PEER_ADDRESS) == PEER
    assert script.events() == [PermissionCreated(PEER[0])]
    # Permissions are refreshed before their 300 s run out.
    script.now = 240.0
    script.client.handle_timeout(script.now)
    assert script.request().method == w.CREATE_PERMISSION


def test_refused_permission_is_reported(script):
    script.allocate()
    script.client.create_permission([PEER[0]], script.now)
    request = script.request()
    script.reply(request.error_response(403, "Forbidden"))
    assert script.events() == [PermissionFailed(PEER[0], 403, "Forbidden")]


def test_channel_bind_switches_to_channel_data_both_ways(script):
    script.allocate()
    number = script.client.bind_channel(PEER, script.now)
    assert w.CHANNEL_MIN <= number <= w.CHANNEL_MAX
    request = script.request()
    assert request.get(w.CHANNEL_NUMBER) == number and request.get(w.XOR_PEER_ADDRESS) == PEER
    script.reply(request.response())
    # A channel binding installs the permission too (RFC 8656 section 12).
    assert script.events() == [PermissionCreated(PEER[0]), ChannelBound(PEER, number)]
    script.client.send_to(b"media", PEER, script.now)
    [raw] = script.sent()
    assert parse_channel_data(raw) == (number, b"media")
    script.client.handle_datagram(Receive(encode_channel_data(number, b"back"), SERVER), script.now)
    assert script.events() == [DataReceived(PEER, b"back")]
    # Channels are refreshed before their 600 s run out (permissions with them).
    script.now = 540.0
    script.client.handle_timeout(script.now)
    methods = sorted(Message.parse(raw).method for raw in script.sent())
    assert w.CHANNEL_BIND in methods


def test_channel_data_over_a_stream_is_padded():
    script = Script(TurnClient(SERVER, "alice", "secret", reliable=True))
    script.allocate()
    script.client.bind_channel(PEER, 0.0)
    script.reply(script.request().response())
    script.events()
    script.client.send_to(b"abcde", PEER, 0.0)
    [raw] = script.sent()
    assert len(raw) == 12


def test_data_indication_is_delivered(script):
    script.allocate()
    indication = Message(w.DATA, MessageClass.INDICATION).add(w.XOR_PEER_ADDRESS, PEER).add(w.DATA_ATTR, b"x")
    script.client.handle_datagram(Receive(indication.encode(fingerprint=True), SERVER), script.now)
    assert script.events() == [DataReceived(PEER, b"x")]


def test_close_deletes_the_allocation(script):
    script.allocate()
    script.client.close(script.now)
    request = script.request()
    assert request.method == w.REFRESH and request.get(w.LIFETIME) == 0
    script.reply(request.response())
    assert script.events() == [AllocationClosed()]
    with pytest.raises(UsageError):
        script.client.send_to(b"late", PEER, script.now)


def test_no_answer_fails_the_allocation_after_the_stun_timeout(script):
    script.client.allocate(0.0)
    while (deadline := script.client.next_deadline()) is not None:
        script.client.handle_timeout(deadline)
    assert script.events() == [AllocationFailed(None, "no answer from the server")]
    assert deadline is None


@given(st.lists(st.binary(max_size=80), max_size=30))
def test_arbitrary_datagrams_from_the_server_never_raise(datagrams):
    script = Script(TurnClient(SERVER, "alice", "secret"))
    script.allocate()
    script.client.bind_channel(PEER, 0.0)
    for data in datagrams:
        script.client.handle_datagram(Receive(data, SERVER), 0.0)
    script.events()


def test_every_event_derives_from_the_layer_base_and_the_base_from_event():
    import netcore.turn.client as client_module

    events = [getattr(client_module, name) for name in client_module.__all__ if name not in
              ("TurnClient", "TurnClientState", "TurnClientEvent")]
    assert events and all(issubclass(kind, TurnClientEvent) for kind in events)
    assert issubclass(TurnClientEvent, Event)
