"""Arbitrary datagrams into a connected transport: never an exception, each one counted, media still flows."""

from __future__ import annotations

import functools

from hypothesis import given, settings
from hypothesis import strategies as st

from netcore.demux import PacketKind, classify
from netcore.net import Receive
from netcore.peer.events import RtpReceived
from netcore.rtp.packet import RtpPacket
from tests.peer.harness import A_IP, AUDIO_PT, B_IP, make_call

A_SOCKET, B_SOCKET = (A_IP, 5000), (B_IP, 6000)


@functools.cache
def connected_call():
    call = make_call(11)
    call.connect()
    return call


def entered(call) -> int:
    s = call.a.stats
    return s.dtls_received + s.rtp_received + s.rtcp_received + s.unknown_received + call.a.ice.dropped


def first_bytes(low: int, high: int):
    return st.tuples(st.integers(low, high), st.binary(max_size=300)).map(lambda t: bytes([t[0]]) + t[1])


datagrams = st.one_of(
    st.binary(max_size=300),
    first_bytes(128, 191),  # RTP and RTCP (RFC 7983)
    first_bytes(20, 63),  # DTLS
    first_bytes(0, 3),  # STUN
    first_bytes(64, 127),  # TURN channels and nothing
)


@settings(max_examples=300)
@given(data=datagrams, known_source=st.booleans())
def test_arbitrary_datagrams_never_raise_and_are_counted(data, known_source):
    call = connected_call()
    before = entered(call)
    source = B_SOCKET if known_source else ("192.0.2.99", 1234)
    call.a.handle_datagram(Receive(data, source, A_SOCKET), call.net.now)
    while call.a.poll_event() is not None:
        pass
    while call.a.poll_transmit() is not None:
        pass
    if classify(data) is not PacketKind.STUN:
        assert entered(call) == before + 1


@settings(max_examples=200)
@given(body=st.binary(min_size=0, max_size=300), rtcp=st.booleans())
def test_authentic_but_malformed_packets_are_counted(body, rtcp):
    """Garbage the peer protected with the real SRTP keys: it authenticates, then must not parse into trouble."""
    call = connected_call()
    header = bytes([0x80, 0xC8 if rtcp else AUDIO_PT]) + bytes(10)
    try:
        protected = (call.b.srtp.protect_rtcp if rtcp else call.b.srtp.protect_rtp)(header + body)
    except Exception:  # libsrtp refuses to protect some of it: nothing to send then
        return
    before = entered(call)
    errors = call.a.stats.rtp_parse_errors + call.a.stats.rtcp_parse_errors
    call.a.handle_datagram(Receive(protected, B_SOCKET, A_SOCKET), call.net.now)
    while call.a.poll_event() is not None:
        pass
    while call.a.poll_transmit() is not None:
        pass
    assert entered(call) == before + 1
    assert call.a.stats.rtp_parse_errors + call.a.stats.rtcp_parse_errors >= errors


def test_media_still_flows_after_garbage():
    call = make_call(12)
    call.connect()
    for i in range(200):
        data = bytes([0x80 + i % 64, i]) + bytes(range(i % 50))
        call.a.handle_datagram(Receive(data, B_SOCKET, A_SOCKET), call.net.now)
    call.node_a.flush()
    dropped_by_srtp = call.a.srtp.stats.auth_failed + call.a.srtp.stats.malformed + call.a.srtp.stats.replayed
    assert dropped_by_srtp + call.a.stats.rtcp_received + call.a.stats.unknown_received > 0
    received = []
    call.node_a.on_event = lambda e: received.append(e) if isinstance(e, RtpReceived) else None
    call.b.send_rtp(RtpPacket.build(payload_type=AUDIO_PT, sequence_number=1, timestamp=0, ssrc=201,
                                    payload=b"\xfc\xff\xfe"), call.net.now)
    call.node_b.flush()
    call.run(0.5)
    assert [e.packet.payload for e in received] == [b"\xfc\xff\xfe"]
