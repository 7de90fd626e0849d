"""The compiled receive path (netcore.sfu._forward.Inbound and the core's replay of what it takes).

The unit: its SRTP context unprotects what libsrtp protects, for every
profile and across a rollover, and refuses what libsrtp refuses; it takes a
datagram only when its source is armed and the packet is the next one of it,
and no datagram, however malformed, makes it raise.  The core: on the
simulated network, with the receive path in C the publishers' transports
and the core end in the state the Python path leaves them in, packet for
packet (the bookkeeping is replayed in arrival order, each packet at its own
arrival time).
"""

from __future__ import annotations

import os
import struct

import pylibsrtp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netcore.rtp.packet import RtpPacket
from netcore.sfu import _forward, fastpath
from netcore.sfu.changes import Changes, changed
from netcore.srtp.profiles import PROFILES
from netcore.srtp.session import SrtpSession
from tests.sfu.harness import SERVER, Room

SSRC = 0x1234ABCD
GCM = next(p for p, params in PROFILES.items() if params.libsrtp_profile == pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM)


def _sender(profile: int, key: bytes | None = None) -> tuple[bytes, pylibsrtp.Session]:
    params = PROFILES[profile]
    key = key or os.urandom(params.key_length + params.salt_length)
    policy = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                              srtp_profile=params.libsrtp_profile)
    policy.allow_repeat_tx = True  # the tests protect some numbers twice (a replay, a forgery)
    return key, pylibsrtp.Session(policy)


def _packet(seq: int, payload: bytes = b"\x90\x80\x05" + bytes(100), pt: int = 96) -> RtpPacket:
    return RtpPacket.build(payload_type=pt, sequence_number=seq & 0xFFFF, timestamp=seq * 3000, ssrc=SSRC,
                           payload=payload, extensions=[(1, b"\x05")])


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_inbound_unprotects_what_libsrtp_protects_and_refuses_what_it_refuses(profile):
    key, tx = _sender(profile)
    inbound = _forward.Inbound(profile, key)
    session = SrtpSession(profile, key, key)  # the transport's wrapper, its RTP through the compiled context
    session._unprotect = inbound.unprotect
    for seq in range(65500, 65600):  # across the rollover
        plain = _packet(seq).data
        protected = tx.protect(plain)
        assert session.unprotect_rtp(protected) == plain
        assert session.unprotect_rtp(protected) is None  # replayed
    late = _packet(65530).data
    assert session.unprotect_rtp(tx.protect(late)) is None  # within the window, seen already
    forged = bytearray(tx.protect(_packet(65601).data))
    forged[-1] ^= 1
    assert session.unprotect_rtp(bytes(forged)) is None
    assert session.unprotect_rtp(b"\x80" + bytes(5)) is None
    stats = session.stats
    assert (stats.replayed, stats.auth_failed, stats.malformed) == (101, 1, 1)
    # a packet older than the window is refused as libsrtp refuses it (protected by a sender that never
    # sent further: its rollover counter is still 0)
    old = _sender(profile, key)[1].protect(_packet(65600 - 1100).data)
    assert session.unprotect_rtp(old) is None and stats.replayed == 102


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_inbound_unprotects_srtcp_as_libsrtp_does_reordered_within_its_window(profile):
    key, tx = _sender(profile)
    session = SrtpSession(profile, key, key)
    session._unprotect_rtcp = _forward.Inbound(profile, key).unprotect_rtcp
    compounds = [bytes([0x81, 201, 0, 7]) + struct.pack("!I", 0x5EED) + os.urandom(24) for _ in range(200)]
    protected = [tx.protect_rtcp(c) for c in compounds]
    order = list(range(200))
    for i in range(0, 200, 10):  # each ten delivered out of order
        order[i:i + 10] = reversed(order[i:i + 10])
    for i in order:
        assert session.unprotect_rtcp(protected[i]) == compounds[i]
    assert session.unprotect_rtcp(protected[150]) is None  # replayed, within the window
    assert session.unprotect_rtcp(protected[3]) is None  # older than the window
    forged = bytearray(tx.protect_rtcp(compounds[0]))
    forged[10] ^= 1
    assert session.unprotect_rtcp(bytes(forged)) is None
    assert session.unprotect_rtcp(b"\x81\xc9\x00") is None
    stats = session.stats
    assert (stats.replayed, stats.auth_failed, stats.malformed) == (2, 1, 1)


def _armed(profile: int = GCM, seq: int = 100) -> tuple[pylibsrtp.Session, object, int]:
    key, tx = _sender(profile)
    inbound = _forward.Inbound(profile, key)
    for s in range(seq - 5, seq + 1):  # the core saw these (unprotected through the same context)
        inbound.unprotect(tx.protect(_packet(s).data))
    epoch = Changes.count
    inbound.arm(SSRC, None, seq, 96, epoch)
    return tx, inbound, epoch


def test_receive_takes_only_the_next_packet_of_an_armed_source_and_logs_it():
    tx, inbound, epoch = _armed()
    plain = _packet(101).data
    now = 5.25
    assert inbound.receive(tx.protect(plain), now, epoch) == 0  # no track installed: forwarded to none
    assert inbound.pending == 1 and inbound.take() == [(plain, now)] and inbound.pending == 0
    assert inbound.receive(tx.protect(_packet(103).data), now, epoch) is None  # a gap: the core's
    assert inbound.armed == []  # and disarmed until the core arms it again
    assert inbound.receive(tx.protect(_packet(104).data), now, epoch) is None


@pytest.mark.parametrize("case", ["epoch", "payload type", "padding", "other ssrc", "log full"])
def test_receive_leaves_a_packet_the_core_must_decide_about_untouched(case):
    tx, inbound, epoch = _armed()
    packet = _packet(101, pt=97 if case == "payload type" else 96)
    data = bytearray(tx.protect(packet.data))
    if case == "epoch":
        changed()
    elif case == "padding":
        data[0] |= 0x20
    elif case == "other ssrc":
        data[8:12] = struct.pack("!I", SSRC + 1)
    elif case == "log full":
        for seq in range(101, 101 + 256):
            assert inbound.receive(tx.protect(_packet(seq).data), 1.0, epoch) == 0
        data = bytearray(tx.protect(_packet(101 + 256).data))
    assert inbound.receive(bytes(data), 1.0, Changes.count) is None
    if case != "other ssrc":
        assert inbound.armed == []


def test_receive_counts_a_forged_or_replayed_packet_and_drops_it():
    tx, inbound, epoch = _armed()
    forged = bytearray(tx.protect(_packet(101).data))
    forged[-1] ^= 1
    assert inbound.receive(bytes(forged), 1.0, epoch) == "auth_failed"
    assert inbound.pending == 0
    assert inbound.receive(tx.protect(_packet(101).data), 1.0, epoch) == 0  # the real one still passes


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=1600), st.integers(0, 0xFFFF), st.booleans())
def test_no_datagram_makes_receive_raise(data, seq, header):
    tx, inbound, epoch = _armed()
    if header and len(data) >= 12:  # aimed at the armed source, the next number
        data = bytes([0x80 | (data[0] & 0x1F), 96]) + struct.pack("!HI", 101, 0) + struct.pack("!I", SSRC) + data[12:]
    result = inbound.receive(data, 1.0, epoch)
    assert result is None or result in ("replayed", "auth_failed", "malformed")
    with pytest.raises(ValueError):
        inbound.unprotect(data)
    with pytest.raises(ValueError):
        inbound.unprotect_rtcp(data)


# -- RTCP that can wait ------------------------------------------------------------------------------------

def _compound(*kinds: str) -> bytes:
    """A plain RTCP compound of these packets (serialized by netcore.rtp)."""
    from netcore.rtp.feedback import Nack, Pli, Remb, TransportFeedback
    from netcore.rtp.rtcp import Bye, ReceiverReport, Sdes, SdesChunk, SenderReport, serialize_rtcp
    made = {"rr": lambda: ReceiverReport(0x5EED, []),
            "sdes": lambda: Sdes([SdesChunk(0x5EED, [(1, b"cname")])]),
            "twcc": lambda: TransportFeedback.from_arrivals(0x5EED, SSRC, 7, 100, 1, [4, None, 8]),
            "nack": lambda: Nack(0x5EED, SSRC, [5, 9]),
            "pli": lambda: Pli(0x5EED, SSRC),
            "remb": lambda: Remb(0x5EED, 500_000, [SSRC]),
            "sr": lambda: SenderReport(0x5EED, 1 << 32, 90000, 10, 1000, []),
            "bye": lambda: Bye([0x5EED])}
    return serialize_rtcp([made[k]() for k in kinds])


@pytest.mark.parametrize("kinds,waits", [
    (("twcc",), True), (("rr", "sdes", "twcc"), True), (("rr", "sdes"), True),
    (("nack",), False), (("pli",), False), (("rr", "twcc", "nack"), False), (("remb",), False),
    (("sr", "sdes"), False), (("bye",), False),
])
def test_rtcp_that_can_wait_is_logged_the_rest_handed_to_the_core_now(kinds, waits):
    key, tx = _sender(GCM)
    inbound = _forward.Inbound(GCM, key)
    plain = _compound(*kinds)
    protected = tx.protect_rtcp(plain)
    assert inbound.receive_rtcp(protected, 1.5) is None  # not taking feedback: left for the transport
    inbound.feedback = 1
    result = inbound.receive_rtcp(protected, 1.5)
    if waits:
        assert result is True and inbound.take() == [(plain, 1.5, True)]
    else:
        assert result == plain and inbound.pending == 0
    assert inbound.receive_rtcp(protected, 1.6) is None  # replayed: untouched, the transport counts it


def test_rtcp_whose_srtcp_fails_is_left_untouched_for_the_transport_to_count():
    key, tx = _sender(GCM)
    inbound = _forward.Inbound(GCM, key)
    inbound.feedback = 1
    protected = tx.protect_rtcp(_compound("twcc"))
    forged = bytearray(protected)
    forged[12] ^= 1
    assert inbound.receive_rtcp(bytes(forged), 1.0) is None
    assert inbound.receive_rtcp(b"\x81\xc9\x00", 1.0) is None
    session = SrtpSession(GCM, key, key)
    session._unprotect_rtcp = inbound.unprotect_rtcp
    assert session.unprotect_rtcp(bytes(forged)) is None and session.stats.auth_failed == 1
    assert session.unprotect_rtcp(protected) == _compound("twcc")  # the window did not move for the forgery


def test_a_malformed_compound_is_handed_to_the_core_whole():
    key, tx = _sender(GCM)
    inbound = _forward.Inbound(GCM, key)
    inbound.feedback = 1
    plain = _compound("rr", "twcc")
    for bad in (plain[:-4], plain + b"\x00\x00\x00\x00", b"\x40" + plain[1:]):  # short, trailing, version 1
        assert inbound.receive_rtcp(tx.protect_rtcp(bad), 1.0) == bad


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=1400))
def test_no_rtcp_makes_receive_rtcp_raise(data):
    key, tx = _sender(GCM)
    inbound = _forward.Inbound(GCM, key)
    inbound.feedback = 1
    for datagram in (data, tx.protect_rtcp(b"\x81\xc9" + struct.pack("!H", max(1, len(data) // 4)) + data)
                     if len(data) >= 4 else data):
        result = inbound.receive_rtcp(datagram, 1.0)
        assert result is None or result is True or type(result) is bytes


# -- the core ---------------------------------------------------------------------------------------------


def _room(compiled: bool) -> Room:
    room = Room(seed=11)
    room.core.fastpath = fastpath.FastPath({SERVER: None}) if compiled else None
    for name in ("a", "b", "c"):
        room.join(name)
    room.connect()
    return room


def _state(room: Room) -> dict:
    """What the core and the publishers' transports keep of the packets received."""
    out = {}
    core = room.core
    for pid, participant in core.participants.items():
        transport = participant.transport
        reporter = transport._reporter
        for publication in participant.publications.values():
            for layer in publication.layers:
                stats = reporter.statistics(layer.ssrc)
                out[(pid, publication.mid, "stats")] = (
                    stats.received, stats.max_seq, stats.cycles, stats.octets, stats._jitter)
                out[(pid, publication.mid, "meter")] = (layer.meter.last_packet, layer.keyframe_timestamp,
                                                        layer.keyframe_bytes)
            out[(pid, publication.mid, "counts")] = (publication.packets, publication.bytes)
        twcc = transport.receiver.twcc
        out[(pid, "transport")] = (transport.stats.rtp_received, dict(twcc._arrivals), twcc._next,
                                   {ssrc: s.packets for ssrc, s in transport.receiver.streams.items()})
        out[(pid, "received")] = participant.packets_received
    out["stats"] = (core.stats.packets_received, core.stats.forwarded_packets, core.stats.forwarded_bytes,
                    dict(core.stats.drops))
    return out


def test_the_core_ends_in_the_same_state_whichever_path_received_the_packets():
    python_room, c_room = _room(False), _room(True)
    for room in (python_room, c_room):
        room.stream(2.0, keyframe_every=20)
        room.run(0.05)  # past the replay's deadline
    fast = c_room.core.fastpath
    assert fast.taken > 0.9 * c_room.core.stats.packets_received  # nearly every packet taken in C
    assert not fast.pending
    assert _state(python_room) == _state(c_room)
    events = [type(e).__name__ for e in c_room.core._events]
    assert events == [type(e).__name__ for e in python_room.core._events]


def test_feedback_taken_in_c_reaches_every_subscribers_estimator_as_on_the_python_path():
    """The subscribers' transport-wide feedback is logged in C and replayed: each server-side transport reads
    every feedback its subscriber sent, the estimators climb as on the Python path, NACKs still answered."""
    python_room, c_room = _room(False), _room(True)
    for room in (python_room, c_room):
        room.stream(3.0)
        room.run(0.2)  # the last feedback in flight, and past the replay's deadline
    fast = c_room.core.fastpath
    sent = sum(c.transport.stats.twcc_sent for c in c_room.clients.values())
    assert fast.feedback_taken > 0.8 * sent > 0  # nearly all of it taken in C
    estimates = {}
    for room in (python_room, c_room):
        for name, client in room.clients.items():
            server_side = room.core.participants[name].transport
            assert server_side.stats.twcc_received == client.transport.stats.twcc_sent, name
            assert server_side.estimator.feedbacks == server_side.stats.twcc_received
        estimates[room is c_room] = sorted(p.transport.target_bitrate for p in room.core.participants.values())
    assert all(c >= 0.8 * p for p, c in zip(estimates[False], estimates[True])), estimates


def test_replay_windows_are_bounded_the_ssrc_unseen_longest_forgotten():
    key, tx = _sender(GCM)
    inbound = _forward.Inbound(GCM, key)
    first = RtpPacket.build(payload_type=96, sequence_number=7, timestamp=0, ssrc=1, payload=b"x").data
    inbound.unprotect(tx.protect(first))
    for ssrc in range(2, 100):  # a publisher restarting its streams: each SSRC still unprotects
        plain = RtpPacket.build(payload_type=96, sequence_number=7, timestamp=0, ssrc=ssrc, payload=b"x").data
        assert inbound.unprotect(tx.protect(plain)) == plain
    # SSRC 1's window was forgotten (bounded state): its replay is no longer recognised as one, as a stream
    # libsrtp never saw is not; a recent SSRC's still is
    assert inbound.unprotect(tx.protect(first)) == first
    with pytest.raises(ValueError, match="replay"):
        inbound.unprotect(tx.protect(RtpPacket.build(payload_type=96, sequence_number=7, timestamp=0, ssrc=99,
                                                     payload=b"x").data))


def test_a_recorder_or_studio_that_watches_no_room_leaves_packets_to_the_compiled_path(tmp_path):
    """The daemon always has a recorder (the core's tap) and the studios (an observer); only the rooms they
    watch keep their publishers' packets on the Python path, from the moment they start watching."""
    from netcore.broadcast.studio import Studios
    from netcore.record.writer import DirectoryStorage
    from netcore.sfu.recorder import SfuRecorder

    room = Room(seed=11)
    room.core.fastpath = fastpath.FastPath({SERVER: None})
    recorder = SfuRecorder(room.core, lambda room_id, now: DirectoryStorage(tmp_path / room_id))
    Studios(room.core)
    for name in ("a", "b"):
        room.join(name)
    room.connect()
    fast = room.core.fastpath
    room.stream(1.0)
    assert fast.taken > 0.8 * room.core.stats.packets_received
    taken, received = fast.taken, room.core.stats.packets_received
    recorder.start(room.core.participants["a"].room_id, room.net.now)
    room.stream(1.0)
    assert fast.taken == taken and room.core.stats.packets_received > received + 50
