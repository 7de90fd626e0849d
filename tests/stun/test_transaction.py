"""Client transactions under a fake clock (RFC 8489 section 6.2)."""

import pytest

from netcore.errors import UsageError
from netcore.net import Receive
from netcore.stun import attributes as a
from netcore.stun.message import BINDING, Message, MessageClass
from netcore.stun.transaction import (
    DataReceived,
    StunClient,
    TransactionFailed,
    TransactionSucceeded,
    TransactionTimedOut,
)

SERVER = ("192.0.2.1", 3478)


def feed(client: StunClient, data: bytes, now: float):
    """Hand one datagram to the client; return the one event it gives for it.

    A datagram that answers a transaction ends it (a ``TransactionEvent``);
    any other comes back as ``DataReceived``.
    """
    client.handle_datagram(Receive(data, SERVER), now)
    event = client.poll_event()
    assert client.poll_event() is None
    return event


def run_until_idle(client: StunClient, start: float = 0.0) -> list[float]:
    """Advance the fake clock deadline by deadline; return the send times."""
    sends = []
    now = start
    while True:
        while client.poll_transmit() is not None:
            sends.append(now)
        deadline = client.next_deadline()
        if deadline is None:
            return sends
        now = deadline
        client.handle_timeout(now)


def test_udp_retransmission_schedule_and_timeout():
    client = StunClient()
    tid = client.start(Message(BINDING, MessageClass.REQUEST), SERVER, 0.0)
    sends = run_until_idle(client)
    assert sends == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    event = client.poll_event()
    assert event == TransactionTimedOut(tid)
    assert client.poll_event() is None


def test_timeout_comes_rm_times_rto_after_the_last_send():
    client = StunClient(rto=0.1, rc=3, rm=4)
    client.start(Message(BINDING, MessageClass.REQUEST), SERVER, 10.0)
    assert run_until_idle(client, 10.0) == pytest.approx([10.0, 10.1, 10.3])
    # last send at 10.3, time-out 0.4 later
    client2 = StunClient(rto=0.1, rc=3, rm=4)
    client2.start(Message(BINDING, MessageClass.REQUEST), SERVER, 10.0)
    deadlines = []
    while (d := client2.next_deadline()) is not None:
        deadlines.append(d)
        client2.handle_timeout(d)
    assert deadlines == pytest.approx([10.1, 10.3, 10.7])


def test_reliable_transport_sends_once_and_times_out_after_ti():
    client = StunClient()
    client.start(Message(BINDING, MessageClass.REQUEST), SERVER, 0.0, reliable=True)
    assert run_until_idle(client) == [0.0]
    assert client.next_deadline() is None
    assert isinstance(client.poll_event(), TransactionTimedOut)


def test_success_response_ends_retransmissions():
    client = StunClient()
    request = Message(BINDING, MessageClass.REQUEST)
    tid = client.start(request, SERVER, 0.0)
    assert client.poll_transmit() is not None
    response = request.response().add(a.XOR_MAPPED_ADDRESS, ("198.51.100.7", 4000))
    event = feed(client, response.encode(), 0.2)
    assert isinstance(event, TransactionSucceeded) and event.transaction_id == tid
    assert event.response.get(a.XOR_MAPPED_ADDRESS) == ("198.51.100.7", 4000)
    assert client.next_deadline() is None
    # A late duplicate answers nothing.
    assert feed(client, response.encode(), 0.3) == DataReceived(response.encode(), SERVER)


def test_error_response_fails_the_transaction():
    client = StunClient()
    request = Message(BINDING, MessageClass.REQUEST)
    client.start(request, SERVER, 0.0)
    event = feed(client, request.error_response(400, "Bad Request").encode(), 0.1)
    assert isinstance(event, TransactionFailed)
    assert event.response.get(a.ERROR_CODE) == (400, "Bad Request")


def test_unauthenticated_response_is_ignored_when_a_key_was_used():
    client = StunClient()
    request = Message(BINDING, MessageClass.REQUEST)
    client.start(request, SERVER, 0.0, integrity_key=b"right")
    assert isinstance(feed(client, request.response().encode(), 0.1), DataReceived)
    assert isinstance(feed(client, request.response().encode(b"wrong"), 0.1), DataReceived)
    assert isinstance(feed(client, request.response().encode(b"right"), 0.1), TransactionSucceeded)


def test_sha256_integrity_is_checked_when_asked():
    client = StunClient()
    request = Message(BINDING, MessageClass.REQUEST)
    client.start(request, SERVER, 0.0, integrity_sha256_key=b"k256")
    assert isinstance(feed(client, request.response().encode(integrity_sha256_key=b"other"), 0.1), DataReceived)
    assert isinstance(feed(client, request.response().encode(integrity_sha256_key=b"k256"), 0.1),
                      TransactionSucceeded)


def test_unsigned_401_is_accepted_for_long_term_requests():
    client = StunClient()
    request = Message(3, MessageClass.REQUEST)
    client.start(request, SERVER, 0.0, integrity_key=b"k", long_term=True)
    challenge = request.error_response(401, "Unauthorized").add(a.REALM, "r").add(a.NONCE, "n")
    assert isinstance(feed(client, challenge.encode(), 0.1), TransactionFailed)


def test_bad_fingerprint_is_ignored():
    client = StunClient()
    request = Message(BINDING, MessageClass.REQUEST)
    client.start(request, SERVER, 0.0)
    raw = bytearray(request.response().encode(fingerprint=True))
    raw[-1] ^= 1
    assert isinstance(feed(client, bytes(raw), 0.1), DataReceived)


def test_many_transactions_and_limits():
    client = StunClient(max_transactions=3)
    for _ in range(3):
        client.start(Message(BINDING, MessageClass.REQUEST), SERVER, 0.0)
    with pytest.raises(UsageError):
        client.start(Message(BINDING, MessageClass.REQUEST), SERVER, 0.0)
    with pytest.raises(UsageError):
        client.start(Message(BINDING, MessageClass.INDICATION), SERVER, 0.0)
    assert len(client) == 3


def test_garbage_is_not_a_response():
    client = StunClient()
    client.start(Message(BINDING, MessageClass.REQUEST), SERVER, 0.0)
    assert feed(client, b"\x80\x60junk", 0.1) == DataReceived(b"\x80\x60junk", SERVER)
    assert feed(client, b"", 0.1) == DataReceived(b"", SERVER)
    assert len(client) == 1


def test_a_transaction_can_have_its_own_rto():
    client = StunClient()
    client.start(Message(BINDING, MessageClass.REQUEST), SERVER, 0.0, rto=0.1)
    client.start(Message(BINDING, MessageClass.REQUEST), SERVER, 0.0)
    assert client.next_deadline() == pytest.approx(0.1)
