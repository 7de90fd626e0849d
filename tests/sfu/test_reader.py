"""The daemon's compiled reading of a media socket (netcore.sfu._forward.Reader, ``SfuCore.read_socket``).

One ``recvmmsg`` of at most 32 datagrams per call; a datagram from an
address the core armed is offered to that participant's ``Inbound`` first
(the same ``receive`` as the core's own C-first branch), and everything it
does not take comes back in the order read, with its source, for the core:
so the daemon sees what a loop reading datagram by datagram would, less what
the compiled path took.  Real sockets on loopback.
"""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netcore.sfu import _forward
from tests.sfu.test_inbound import SSRC, _armed, _packet


def _pair(family: int = socket.AF_INET) -> tuple[socket.socket, socket.socket]:
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    server, client = socket.socket(family, socket.SOCK_DGRAM), socket.socket(family, socket.SOCK_DGRAM)
    server.bind((host, 0))
    server.setblocking(False)
    client.bind((host, 0))
    return server, client


def _read_all(reader, server: socket.socket, epoch: int = 0) -> list:
    out = []
    while True:
        rest, logged, taken, forwarded, size, back = reader.read(server.fileno(), 1.0, epoch)
        if not rest and not taken:
            return out
        out.extend(rest)


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_what_it_does_not_take_comes_back_in_order_with_its_source(family):
    server, client = _pair(family)
    reader = _forward.Reader()
    sent = [bytes([i % 256]) * (1 + i) for i in range(40)]  # STUN-, DTLS- and RTP-looking first bytes
    for data in sent:
        client.sendto(data, server.getsockname()[:2])
    rest, logged, taken, forwarded, size, back = reader.read(server.fileno(), 1.0, 0)
    assert len(rest) == 32 and (logged, taken, forwarded, size, back) == ([], 0, 0, 0, 0)  # one recvmmsg's budget
    rest += _read_all(reader, server)
    source = client.getsockname()[:2]
    assert rest == [(data, source) for data in sent]
    assert reader.read(server.fileno(), 1.0, 0) == ([], [], 0, 0, 0, 0)  # nothing there: no error


def test_a_datagram_longer_than_any_of_ours_is_dropped_and_counted():
    server, client = _pair()
    reader = _forward.Reader()
    client.sendto(b"\x80" * 2049, server.getsockname())
    client.sendto(b"\x80" * 2048, server.getsockname())
    assert _read_all(reader, server) == [(b"\x80" * 2048, client.getsockname())]
    assert reader.truncated == 1


def test_the_next_packet_of_an_armed_source_is_taken_and_logged_the_rest_left_in_order():
    server, client = _pair()
    tx, inbound, epoch = _armed()
    reader = _forward.Reader()
    reader.add(client.getsockname(), inbound, "publisher")
    plain = [_packet(seq).data for seq in (101, 102, 104)]
    for data in plain:
        client.sendto(tx.protect(data), server.getsockname())
    stun = b"\x00\x01\x00\x00" + bytes(16)
    client.sendto(stun, server.getsockname())
    rest, logged, taken, forwarded, size, back = reader.read(server.fileno(), 2.5, epoch)
    assert (logged, taken, back) == (["publisher"], 2, 0)  # 101 and 102; 104 is after a gap: the core's
    assert [entry[0] for entry in inbound.take()] == plain[:2]
    assert len(rest) == 2 and rest[1] == (stun, client.getsockname())
    left, source = rest[0]
    assert source == client.getsockname() and len(left) > len(plain[2])  # still protected, untouched
    assert inbound.armed == []  # and the source disarmed until the core arms it again


def test_an_armed_source_elsewhere_or_removed_is_not_offered():
    server, client = _pair()
    _, other = _pair()
    tx, inbound, epoch = _armed()
    reader = _forward.Reader()
    reader.add(other.getsockname(), inbound, "publisher")  # armed from another address
    client.sendto(tx.protect(_packet(101).data), server.getsockname())
    assert len(_read_all(reader, server, epoch)) == 1 and inbound.pending == 0
    reader.add(client.getsockname(), inbound, "publisher")
    reader.remove(client.getsockname())
    reader.remove(("fe80::1%lo", 5))  # never added (a scoped address add refuses): nothing to do
    client.sendto(tx.protect(_packet(102).data), server.getsockname())
    assert len(_read_all(reader, server, epoch)) == 1 and inbound.pending == 0
    assert reader.sources() == 1


def test_a_forged_packet_of_an_armed_source_comes_back_with_its_counter():
    server, client = _pair()
    tx, inbound, epoch = _armed()
    reader = _forward.Reader()
    reader.add(client.getsockname(), inbound, "publisher")
    forged = bytearray(tx.protect(_packet(101).data))
    forged[-1] ^= 1
    client.sendto(bytes(forged), server.getsockname())
    rest, logged, taken, forwarded, size, back = reader.read(server.fileno(), 1.0, epoch)
    assert rest == [("publisher", "auth_failed")] and (taken, back) == (0, 1)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=0, max_size=1400), st.booleans()), min_size=1, max_size=40))
def test_no_datagram_from_an_armed_source_makes_read_raise(datagrams):
    server, client = _pair()
    tx, inbound, epoch = _armed()
    reader = _forward.Reader()
    reader.add(client.getsockname(), inbound, "publisher")
    for data, aimed in datagrams:
        if aimed and len(data) >= 12:  # the armed source's next number, a random rest
            data = bytes([0x80 | (data[0] & 0x1F), 96]) + struct.pack("!HII", 101, 0, SSRC) + data[12:]
        client.sendto(data, server.getsockname())
    rest = _read_all(reader, server, epoch)
    assert len(rest) + inbound.pending == len(datagrams)  # each one handed back, or taken and logged
    for first, second in rest:
        assert (type(first) is bytes and second == client.getsockname()) or (
            first == "publisher" and second in ("replayed", "auth_failed", "malformed"))
    server.close()
    client.close()


def test_a_peers_rtcp_that_can_wait_is_logged_the_rest_handed_back_unprotected():
    from tests.sfu.test_inbound import GCM, _compound, _sender
    server, client = _pair()
    key, tx = _sender(GCM)
    inbound = _forward.Inbound(GCM, key)
    inbound.feedback = 1
    reader = _forward.Reader()
    reader.add(client.getsockname(), inbound, "subscriber")
    feedback, nack = _compound("twcc"), _compound("nack")
    for plain in (feedback, nack):
        client.sendto(tx.protect_rtcp(plain), server.getsockname())
    rest, logged, taken, forwarded, size, other = reader.read(server.fileno(), 3.0, 0)
    assert (logged, taken, other, reader.rtcp) == (["subscriber"], 0, 2, 1)
    assert rest == [("subscriber", nack)]  # a NACK does not wait for the replay
    assert inbound.take() == [(feedback, 3.0, True)]
