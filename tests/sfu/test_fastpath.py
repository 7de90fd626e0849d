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
from netcore.rtp.vp8 import Vp8Descriptor
from netcore.sfu import _forward, fastpath
from netcore.sfu.rewrite import ALL_TEMPORAL, DownTrack
from netcore.srtp.profiles import PROFILES, SrtpProfile
from netcore.srtp.session import SrtpSession
from netcore.testing.simnet import Link
from tests.sfu.harness import SERVER, Room
from tests.sfu.test_temporal import PATTERN, TemporalPublisher

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


NO_SYNC = tuple((tid, False) for tid, _ in PATTERN)  # L1T3 without layer sync: up only at a key frame
TILES = ("tile1", "tile2", "tile3")


def _capped_call(compiled: bool, pattern: tuple[tuple[int, bool], ...],
                 uplink: Link | None = None) -> tuple[Room, dict, dict]:
    """An L1T3 publisher, one viewer taking every TID and three asking for 3 frames/s (TL0 alone); then
    tile1's cap is lifted (up at a layer sync frame, else at the key frame that comes next), tile1 is
    capped again and tile2 raised to TL1 (down and up at once).  ``uplink``: the publisher's link (loss
    and reordering: packets that arrive after others of a later offset range, repairs).  Returns the room,
    what each client received and each slot's (cap, highest TID forwarded, packets left out for their
    TID) after each step."""
    room = _room(compiled, seed=5)
    pub = room.join("pub", slots=0, link=uplink)
    for name in ("wide",) + TILES:
        room.join(name, publish=(), slots=1)
    room.connect()
    core = room.core
    publisher = TemporalPublisher(room, pub, frame_bytes=1200, pattern=pattern)  # two packets a frame
    mid = next(m for m, p in core.participants["pub"].publications.items() if p.kind == "video")
    publication = core.participants["pub"].publications[mid]
    steps: dict[str, list] = {name: [] for name in ("wide",) + TILES}

    def cap(name: str, fps: float | None) -> None:
        core.request_max_height(name, "pub", mid, None, room.net.now, max_fps=fps)

    def step(seconds: float) -> None:
        publisher.stream(seconds)
        for name, row in steps.items():
            downtrack = next(s for s in core.participants[name].slots if s.kind == "video").downtrack
            row.append((downtrack.max_temporal, downtrack.temporal, downtrack.dropped.get("temporal_layer", 0)))

    step(2.0)  # the TIDs' frame rates measured
    for name in TILES:
        cap(name, 3)
    step(2.0)
    cap("tile1", None)
    step(3.0)  # the allocator moves up after its hold
    core.request_keyframe(publication, room.net.now)
    step(1.0)
    cap("tile1", 3)
    cap("tile2", 20)  # TL0+TL1: 15 frames/s
    step(2.0)
    return room, _received(room), steps


LOSSY_UPLINK = Link(delay=0.01, jitter=0.004, reorder=0.05, loss=0.03)


@pytest.mark.parametrize("pattern,uplink", [(PATTERN, None), (NO_SYNC, None), (PATTERN, LOSSY_UPLINK)],
                         ids=["layer-sync", "key-frame-only", "lossy-reordering-uplink"])
def test_both_paths_leave_out_the_same_temporal_layers_for_capped_slots(pattern, uplink):
    """The cap is the core's; the compiled track applies it: same bytes to every subscriber, the same
    TID forwarded after each change, the same packets left out (their numbers closed up alike, late and
    repaired packets numbered from the offset range they fall in)."""
    python_room, python, python_steps = _capped_call(False, pattern, uplink)
    c_room, compiled, c_steps = _capped_call(True, pattern, uplink)
    assert python.keys() == compiled.keys()
    for key in python:
        assert len(python[key]) > 50, key
        assert python[key] == compiled[key], key
    assert python_steps == c_steps
    tile1 = [row[:2] for row in c_steps["tile1"]]
    # capped; lifted, up at the next layer sync frame (without them only at the key frame); capped again
    assert tile1[1] == (0, 0) and tile1[2] == (2, 2 if pattern is PATTERN else 0)
    assert tile1[3] == (2, 2) and tile1[4] == (0, 0)
    assert c_steps["tile2"][4][:2] == (1, 1 if pattern is PATTERN else 0) and c_steps["tile3"][4][:2] == (0, 0)
    assert c_steps["tile3"][4][2] > 100 and c_steps["wide"][4][2] == 0
    # the capped slots stayed on the compiled path: a cap change is not an ejection, a TID above it neither
    for name in TILES:
        slot = next(s for s in c_room.core.participants[name].slots if s.kind == "video")
        assert slot.downtrack.fast is not None and slot.downtrack.fast.track.packets > 50, name
        assert slot.downtrack.packets < 10, name  # those before it was installed, in Python
    assert c_room.core.stats.forwarded_packets == python_room.core.stats.forwarded_packets


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


SOURCE = 0x5EED


def _l1t3_source(rng: random.Random, frames: int) -> list[RtpPacket]:
    """An L1T3 source: 1-3 packets a frame, layer sync on most TL1/TL2 frames, a key frame now and then,
    sequence numbers and picture ids wrapping; arriving with neighbours swapped, some packets a few dozen
    places late (into older offset ranges) and one at the very end (older than every range kept)."""
    packets, seq, pid, tl0, position = [], 65_000, 32_700, 250, 0
    for f in range(frames):
        key = f == 0 or rng.random() < 0.02
        position = 0 if key else position
        tid = PATTERN[position % 4][0]
        position += 1
        tl0 = (tl0 + 1) & 0xFF if tid == 0 else tl0
        sync = tid > 0 and rng.random() < 0.7
        count = rng.randint(1, 3)
        for i in range(count):
            desc = Vp8Descriptor(i == 0, 0, picture_id=pid, tl0picidx=tl0, tid=tid, layer_sync=sync)
            body = bytes((0x00 if key else 0x01,)) + rng.randbytes(rng.randint(10, 40))
            packets.append(RtpPacket.build(payload_type=96, sequence_number=seq, timestamp=(f * 3000) & 0xFFFFFFFF,
                                           ssrc=SOURCE, payload=desc.serialize() + body, marker=i == count - 1))
            seq = (seq + 1) & 0xFFFF
        pid = (pid + 1) & 0x7FFF
    for i in range(1, len(packets) - 1):
        if rng.random() < 0.05:
            packets[i], packets[i + 1] = packets[i + 1], packets[i]
    for i in rng.sample(range(100, len(packets) - 100), 20):
        packets.insert(i + rng.randint(5, 60), packets.pop(i))
    packets.append(packets.pop(800))
    return packets


def _video_downtrack() -> DownTrack:
    downtrack = DownTrack(0xD0D0, "video", 90000)
    downtrack.attach({96: 97}, {96: "VP8"})
    downtrack.want(SOURCE)
    return downtrack


def test_a_capped_compiled_track_writes_what_the_python_down_track_writes_packet_for_packet():
    """One down-track forwarded in Python alone, its twin in C whenever steady (installed, ejected and
    installed again as the core does), the cap moved at random packets: the same bytes for every packet,
    the same packets left out, the same TID and drop counts at the end (over 256 runs of skipped packets:
    the oldest offset ranges forgotten alike; over 128 pictures: the picture id map too)."""
    rng = random.Random(19)
    packets = _l1t3_source(rng, 3000)
    python, twin = _video_downtrack(), _video_downtrack()
    params = PROFILES[SrtpProfile.SRTP_AEAD_AES_128_GCM]
    output = _forward.Output()
    native = _forward.Subscriber(output, SrtpProfile.SRTP_AEAD_AES_128_GCM,
                                 rng.randbytes(params.key_length + params.salt_length), ("127.0.0.1", 9), 0, 0, 0)
    group = _forward.Group(0)
    in_c = ejected = 0
    for i, packet in enumerate(packets):
        now = i * 0.002
        if rng.random() < 0.004:  # the core's cap: into the compiled track when installed, as _set_temporal does
            python.max_temporal = twin.max_temporal = rng.choice((0, 0, 1, 2, ALL_TEMPORAL))
            if twin.fast is not None:
                twin.fast.track.max_temporal = twin.max_temporal
        expected = python.forward(packet, now)
        got = None
        handled = False
        if twin.fast is not None:
            count, _, gave_back = group.forward(packet.data, now)
            if gave_back is None:
                handled = True
                if count:
                    taken = output.take()
                    # (none when SRTP refuses a number over 1,024 behind the latest, as libsrtp does: it was
                    # written all the same, in the history under the number Python gave it)
                    seq = int.from_bytes(taken[0][0][2:4], "big") if taken else expected.sequence_number
                    got = twin.fast.track.history(seq)
                    in_c += 1
            else:
                twin.fast.eject()
                ejected += 1
        if not handled:
            out = twin.forward(packet, now)
            got = None if out is None else bytes(out.data)
            if out is not None and fastpath._steady(twin, SOURCE, "VP8"):
                track = _forward.Track(native, twin.ssrc, twin.payload_types, {96: True}, 0, 0, b"",
                                       twin.max_temporal)
                fastpath.load_state(track, twin)
                group.add(track)
                twin.fast = fastpath.FastTrack(track, group, twin, None, SOURCE, {})
        assert got == (None if expected is None else bytes(expected.data)), (i, packet.sequence_number)
    assert python.temporal == twin.temporal and python.dropped == twin.dropped
    assert python.rewriter.gaps == twin.rewriter.gaps > 0
    assert python.dropped["temporal_layer"] > 1000 and python.packets > 2000
    assert in_c > 0.9 * python.packets and ejected >= 1  # the packet 2,000 late: older than every range kept
