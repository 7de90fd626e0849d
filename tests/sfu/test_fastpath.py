"""The compiled forwarding path (netcore.sfu.fastpath) against the Python path, on the simulated network.

The same room, the same clients and the same seeds, once with each path:
every client must receive the same packets on every receive section,
byte for byte but for the transport-wide sequence number (the compiled
path does not pace, so packets of different subscribers leave in another
order and are numbered differently) and must decrypt every one of them
(one SRTP context per subscriber, shared by both paths).
"""

from __future__ import annotations

import random

import pylibsrtp
import pytest

from netcore.rtp.packet import RtpPacket
from netcore.sfu import _forward, fastpath
from netcore.srtp.profiles import PROFILES, SrtpProfile
from netcore.srtp.session import SrtpSession
from netcore.testing.simnet import Link
from tests.sfu.harness import SERVER, Room

SERVER_IP = SERVER[0]


def _room(compiled: bool, seed: int = 3) -> Room:
    room = Room(seed=seed)
    room.core.fastpath = fastpath.FastPath({SERVER: None}) if compiled else None
    return room


def _received(room: Room) -> dict[tuple[str, str], list[tuple]]:
    """Per (client, mid): each packet's header fields, extensions but the transport-wide number, payload."""
    out = {}
    for name, client in room.clients.items():
        twcc = client.transport.config.twcc_extension
        for mid, packets in client.received.items():
            rows = sorted({(p.sequence_number, p.ssrc, p.timestamp, p.payload_type, p.marker,
                            tuple(e for e in p.extensions if e[0] != twcc), bytes(p.payload)) for p in packets})
            out[(name, mid)] = rows
    return out


def _call(compiled: bool) -> tuple[Room, dict]:
    room = _room(compiled)
    for name in ("a", "b", "c"):
        room.join(name)
    room.join("d", publish=(), slots=2)
    room.connect()
    room.stream(2.0, keyframe_every=1000)
    return room, _received(room)


def test_both_paths_deliver_the_same_packets_to_every_subscriber():
    python_room, python = _call(False)
    c_room, compiled = _call(True)
    assert python.keys() == compiled.keys()
    for key in python:
        assert len(python[key]) > 50, key
        assert python[key] == compiled[key], key
    fast = c_room.core.fastpath
    # nearly everything went through the compiled path: only each slot's first packets did not
    assert fast.forwarded > 0.9 * c_room.core.stats.forwarded_packets
    assert c_room.core.stats.forwarded_packets == python_room.core.stats.forwarded_packets
    # and what the clients decrypted is all that was sent: no SRTP failure on either side
    for client in c_room.clients.values():
        srtp = client.transport.srtp
        assert srtp.stats.auth_failed == 0 and srtp.stats.malformed == 0 and srtp.stats.replayed == 0


def test_sender_reports_and_estimates_see_the_compiled_packets():
    room, _ = _call(True)
    for participant in room.core.participants.values():
        sender = participant.transport.sender
        if participant.id == "d":
            assert sender.packets_sent >= room.core.participants["d"].packets_forwarded
            for stream in sender.streams.values():
                if stream.packets_sent:
                    assert stream.reporter.packet_count == stream.packets_sent
    d = room.core.participants["d"].transport
    assert d.estimator.unknown_reports == 0  # every transport-wide number fed back was one it knew of


def test_a_subscriber_on_a_lossy_link_is_repaired_from_the_compiled_history():
    room = _room(True, seed=7)
    room.join("a", slots=1)
    room.join("b", slots=1)
    room.join("c", slots=1, publish=(), link=Link(delay=0.01))
    room.connect()
    room.net._links[SERVER_IP] = Link(delay=0.005, loss=0.05)
    room.stream(3.0, audio=False)
    room.net._links[SERVER_IP] = Link(delay=0.005)
    room.run(1.0)
    server_c = room.core.participants["c"].transport
    assert server_c.stats.nacks_received > 0 and server_c.sender.retransmissions > 0
    assert room.core.fastpath.forwarded > 0
    # every video packet the subscriber lacks but the last few was re-sent, from the compiled history
    c = room.clients["c"]
    video = [mid for mid, kind in c.slots.items() if kind == "video" and c.received.get(mid)]
    numbers = {p.sequence_number for p in c.received[video[0]]}
    assert len(set(range(min(numbers), max(numbers) + 1)) - numbers) <= 2
    assert server_c.sender.retransmissions_refused == 0


def test_a_publisher_leaving_gives_the_slots_back_and_a_new_one_is_taken_again():
    """(test_core's rejoin test checks the stream's continuity across it, on this path by default.)"""
    room = _room(True)
    a = room.join("a")
    room.join("b")
    room.connect()
    room.stream(1.0)
    fast = room.core.fastpath

    def installed() -> list:
        return [s.mid for s in room.core.participants["a"].slots if s.downtrack.fast is not None]

    assert len(installed()) == 2  # b's audio and video
    room.core.leave("b", room.net.now)
    assert installed() == [] and all(len(group) == 0 for group in fast.groups.values())
    del room.clients["b"]
    room.join("b2")
    room.connect()
    room.stream(1.0)
    assert len(installed()) == 2 and a.received


@pytest.mark.parametrize("profile", [SrtpProfile.SRTP_AEAD_AES_128_GCM, SrtpProfile.SRTP_AEAD_AES_256_GCM,
                                     SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80])
def test_the_compiled_srtp_context_protects_as_libsrtp_does(profile):
    """AES-GCM is done in C on OpenSSL, the others through libsrtp: either way the same bytes as the
    transport's own session (pylibsrtp), across a sequence number wrap (the rollover counter), repairs
    within the replay window, and a repair older than it refused by both."""
    rng = random.Random(profile)
    params = PROFILES[profile]
    master = rng.randbytes(params.key_length + params.salt_length)
    reference = SrtpSession(profile, master, master)
    native = _forward.Subscriber(_forward.Output(), profile, master, ("127.0.0.1", 9), 0, 0, 0)
    numbers = list(range(65000, 65536)) + list(range(0, 2000)) + [1990, 1500, 100]
    refused = 0
    for i, seq in enumerate(numbers):
        packet = RtpPacket.build(payload_type=96, sequence_number=seq, timestamp=i * 3000, ssrc=0x1234 + i % 2,
                                 payload=rng.randbytes(1 + i % 1100), extensions=[(1, b"ab")] if i % 3 else []).data
        try:
            expected = reference.protect_rtp(packet)
        except pylibsrtp.Error:
            expected = None
        try:
            got = native.protect(packet)
        except ValueError:
            got = None
        refused += expected is None
        assert got == expected, (i, seq)
    assert refused == 1  # the repair of 100, 2,000 packets back
