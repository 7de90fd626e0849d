"""VP8 temporal layers through the call server on the simulated network (virtual time, real ICE/DTLS/SRTP/TWCC).

A publisher without simulcast sends L1T3 (TIDs 0,2,1,2, TL0PICIDX, layer
sync on the second and third frame of each period), 600 kbit/s in all, a
quarter of it TL0; two subscribers receive it. One subscriber's link from
the server crosses a 250 kbit/s bottleneck: it is given TL0 alone (the
allocator's TID, below the only layer's full rate) while the other gets
every TID, and what it receives has no sequence number or picture id gap;
when the limit is lifted it climbs back to every TID.
"""

from __future__ import annotations

import struct

from netcore.rtp.packet import RtpPacket
from netcore.rtp.sequence import seq_diff
from netcore.rtp.vp8 import Vp8Descriptor
from netcore.testing.bottleneck import Bottleneck
from tests.sfu.harness import Client, Publisher, Room
from tests.sfu.test_simulcast import ShapedNetwork, in_order

FPS = 30
FRAME_BYTES = 2500  # 600 kbit/s at 30 frames/s: TL0 150, TL0+TL1 300
PATTERN = ((0, False), (2, True), (1, True), (2, False))  # (TID, layer sync)


class TemporalPublisher(Publisher):
    """L1T3 frames in 1000-byte packets; a key frame (TID 0, the pattern restarting) when asked.
    ``frame_bytes``: each frame's size; ``pattern``: (TID, layer sync) of the frames of a period."""

    def __init__(self, room: Room, client: Client, frame_bytes: int = FRAME_BYTES,
                 pattern: tuple[tuple[int, bool], ...] = PATTERN) -> None:
        super().__init__(room, client, FPS)
        self.frame_bytes, self.pattern = frame_bytes, pattern
        self.position = 0
        self.tl0picidx = 0

    def frame(self, now: float) -> list[RtpPacket]:
        client = self.client
        key = self.room.keyframe_wanted(client) or client.frame == 0
        if key:
            self.position = 0
        tid, sync = self.pattern[self.position % len(self.pattern)]
        self.position += 1
        if tid == 0:
            self.tl0picidx = (self.tl0picidx + 1) & 0xFF
        pid = client.picture_id
        client.picture_id = (pid + 1) & 0x7FFF
        body = bytes((0x00 if key else 0x01,)) + struct.pack("!I", client.frame) + bytes(self.frame_bytes)
        chunks = [body[i:i + 1000] for i in range(0, len(body), 1000)]
        ssrc = client.send["video"]
        out = []
        for i, chunk in enumerate(chunks):
            seq = client.seq.get(ssrc, 1000)
            client.seq[ssrc] = (seq + 1) & 0xFFFF
            desc = Vp8Descriptor(i == 0, 0, picture_id=pid, tl0picidx=self.tl0picidx, tid=tid, layer_sync=sync)
            out.append(RtpPacket.build(payload_type=client.pts["video"], sequence_number=seq,
                                       timestamp=int(now * 90000) & 0xFFFFFFFF, ssrc=ssrc,
                                       payload=desc.serialize() + chunk, marker=i == len(chunks) - 1))
        client.frame += 1
        return out


def received_frames(client: Client, mid: str, since: int = 0) -> list[Vp8Descriptor]:
    """The descriptors of the frames ``client`` received the first packet of (from its ``since``-th packet)."""
    out = []
    for packet in in_order(client, mid)[since:]:
        desc, _ = Vp8Descriptor.parse(packet.payload)
        if desc.start_of_partition:
            out.append(desc)
    return out


def test_a_slow_subscriber_gets_tl0_alone_without_gaps_and_climbs_back_when_the_limit_is_lifted():
    net = ShapedNetwork(11)
    room = Room(net=net)
    pub = room.join("pub", slots=0)
    wide = room.join("wide", publish=(), slots=1)
    narrow = room.join("narrow", publish=(), slots=1)
    bottleneck = net.shaped["192.0.2.3"] = Bottleneck(250_000, delay=0.01, max_queue_delay=0.2)
    room.connect()
    core = room.core
    publisher = TemporalPublisher(room, pub)
    mid = {c.name: next(m for m, k in c.slots.items() if k == "video") for c in (wide, narrow)}

    def slot(name: str):
        return next(s for s in core.participants[name].slots if s.kind == "video")

    publisher.stream(20.0)
    assert slot("narrow").downtrack.temporal == 0, core.participants["narrow"].transport.target_bitrate
    assert slot("wide").downtrack.temporal >= 2  # every TID (3: never limited)
    settled = {c.name: len(in_order(c, mid[c.name])) for c in (wide, narrow)}
    publisher.stream(5.0)
    narrow_frames = received_frames(narrow, mid["narrow"], settled["narrow"])
    wide_frames = received_frames(wide, mid["wide"], settled["wide"])
    assert narrow_frames and {d.tid for d in narrow_frames} == {0}
    assert {d.tid for d in wide_frames} == {0, 1, 2}
    for client, frames in ((narrow, narrow_frames), (wide, wide_frames)):
        # one picture id after the other, TL0PICIDX one up per TL0 frame, whatever was dropped
        for a, b in zip(frames, frames[1:]):
            assert (b.picture_id - a.picture_id) & 0x7FFF == 1, client.name
            assert (b.tl0picidx - a.tl0picidx) & 0xFF == (1 if b.tid == 0 else 0), client.name
        # and no sequence number missing (what the bottleneck lost was repaired by NACK/RTX)
        packets = in_order(client, mid[client.name])[settled[client.name]:]
        assert all(seq_diff(b.sequence_number, a.sequence_number) == 1 for a, b in zip(packets, packets[1:]))
    dropped = slot("narrow").downtrack.dropped
    assert dropped.get("temporal_layer", 0) > 0 and "temporal_layer" not in slot("wide").downtrack.dropped
    bottleneck.capacity = 50_000_000  # the limit is lifted
    for _ in range(6):
        publisher.stream(5.0)
        if slot("narrow").downtrack.temporal >= 2:
            break
    assert slot("narrow").downtrack.temporal >= 2, core.participants["narrow"].transport.target_bitrate
    assert core.stats.temporal_switches >= 1 and core.stats.layer_switches == 0


def test_a_viewer_asking_for_a_low_frame_rate_gets_tl0_alone_on_a_wide_link_and_every_tid_when_it_stops_asking():
    room = Room(net=ShapedNetwork(12))
    pub = room.join("pub", slots=0)
    tile = room.join("tile", publish=(), slots=1)
    wide = room.join("wide", publish=(), slots=1)
    room.connect()
    core = room.core
    publisher = TemporalPublisher(room, pub)
    mid = next(m for m, k in tile.slots.items() if k == "video")
    video_mid = next(m for m, p in core.participants["pub"].publications.items() if p.kind == "video")

    def slot(name: str):
        return next(s for s in core.participants[name].slots if s.kind == "video")

    publisher.stream(3.0)  # the TIDs' frame rates measured: TL0 7.5, TL0+TL1 15, all 30 frames/s
    core.request_max_height("tile", "pub", video_mid, None, room.net.now, max_fps=10)
    publisher.stream(5.0)
    assert slot("tile").downtrack.temporal == 0 and slot("wide").downtrack.temporal >= 2
    since = len(in_order(tile, mid))
    publisher.stream(5.0)
    frames = received_frames(tile, mid, since)
    assert frames and {d.tid for d in frames} == {0} and 30 <= len(frames) <= 45  # 7.5 frames/s, not 30
    for a, b in zip(frames, frames[1:]):  # decodable: one picture id after the other
        assert (b.picture_id - a.picture_id) & 0x7FFF == 1
    core.request_max_height("tile", "pub", video_mid, None, room.net.now)  # no limit any more
    for _ in range(6):
        publisher.stream(2.0)
        if slot("tile").downtrack.temporal >= 2:
            break
    assert slot("tile").downtrack.temporal >= 2
