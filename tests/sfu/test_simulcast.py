"""Simulcast through the call server on the simulated network (virtual time, real ICE/DTLS/SRTP/TWCC).

A publisher sends three VP8-shaped layers (RIDs q, h, f; 180p, 360p, 720p)
with no SSRC signalled, as browsers do; two subscribers receive them. One
subscriber's link from the server crosses a 300 kbit/s bottleneck
(netcore.testing.bottleneck in virtual time): its estimate falls and it is
given the low layer while the other climbs to the high one; when the limit
is lifted it climbs back. Each subscriber's frame numbers keep moving
forward with no gap longer than 500 ms across the switches.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netcore.errors import UsageError
from netcore.rtp.vp8 import Vp8Descriptor
from netcore.sdp.jsep import RID_EXTENSION
from netcore.sfu.allocator import PAUSED_FRAMES
from netcore.sfu.participant import Publication
from netcore.sfu.events import LayerSwitched, SlotsChanged
from netcore.testing.bottleneck import Bottleneck
from netcore.testing.simnet import Network
from tests.sfu.harness import SERVER, Client, Publisher, Room, SimulcastPublisher

HEIGHTS = {"q": 180, "h": 360, "f": 720}
SIZES = {"q": 250, "h": 1100, "f": 3600}  # bytes per frame at 30 frames/s: ~70, ~280, ~880 kbit/s
FPS = 30


def layered(room: Room, client: Client) -> SimulcastPublisher:
    return SimulcastPublisher(room, client, HEIGHTS, SIZES, FPS)


class ShapedNetwork(Network):
    """The simulated network, with what the server sends to some hosts crossing a :class:`Bottleneck`."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.shaped: dict[str, Bottleneck] = {}

    def send(self, data: bytes, src, dst) -> None:
        bottleneck = self.shaped.get(dst[0]) if src[0] == SERVER[0] else None
        if bottleneck is None:
            super().send(data, src, dst)
            return
        self.sent += 1
        arrival = bottleneck.send(len(data), self.now)
        if arrival is None:
            self.dropped += 1
            return
        self.call_at(arrival, self._route, data, src, dst, self._realm_of[src[0]])


def in_order(client: Client, mid: str) -> list:
    """The packets the subscriber received on ``mid``, once each (retransmissions repeat some), in
    sequence-number order (unwrapped)."""
    packets, last, base = {}, None, 0
    for packet in client.received.get(mid, []):
        seq = packet.sequence_number
        if last is not None and seq - last < -0x8000:
            base += 0x10000
        elif last is not None and seq - last > 0x8000:
            seq -= 0x10000
        packets.setdefault(base + seq, packet)
        last = packet.sequence_number
    return [packets[k] for k in sorted(packets)]


def frames(client: Client, mid: str) -> list[int]:
    """The frame number of each frame the subscriber received the first packet of, in sequence order."""
    out = []
    for packet in in_order(client, mid):
        payload = packet.payload
        descriptor, pos = Vp8Descriptor.parse(payload)
        if not descriptor.start_of_partition:
            continue  # not the first packet of its frame
        offset = pos + 3 + (7 if not payload[pos] & 0x01 else 0)  # frame tag, key-frame start code and size
        out.append(struct.unpack_from("!I", payload, offset)[0])
    return out


def video_mid_of_pub(core) -> str:
    return next(m for m, p in core.participants["pub"].publications.items() if p.kind == "video")


def test_each_subscriber_gets_the_layer_its_link_takes_and_climbs_back_when_the_limit_is_lifted():
    net = ShapedNetwork(7)
    room = Room(net=net)
    pub = room.join("pub", slots=0, simulcast=("q", "h", "f"))
    wide = room.join("wide", publish=(), slots=1)
    narrow = room.join("narrow", publish=(), slots=1)
    narrow_ip = narrow.node.addresses[0][0] if hasattr(narrow.node, "addresses") else "192.0.2.3"
    bottleneck = net.shaped[narrow_ip] = Bottleneck(300_000, delay=0.01, max_queue_delay=0.2)
    room.connect()
    offer_rids = room.core.participants["pub"].publications
    assert [p.rids for p in offer_rids.values() if p.kind == "video"] == [("q", "h", "f")]
    assert RID_EXTENSION in dict((u, i) for i, u in pub.transport.config.header_extensions)
    publisher = layered(room, pub)
    core = room.core
    video_mid = {c.name: next(m for m, k in c.slots.items() if k == "video") for c in (wide, narrow)}

    def layer_of(name: str) -> str | None:
        slot = next(s for s in core.participants[name].slots if s.kind == "video")
        layer = slot.publication.by_ssrc.get(slot.downtrack.rewriter.source) if slot.publication else None
        return layer.rid if layer else None

    publisher.stream(20.0)
    assert layer_of("wide") == "f", (layer_of("wide"), wide.transport.target_bitrate)
    assert layer_of("narrow") == "q", (layer_of("narrow"), core.participants["narrow"].transport.target_bitrate)
    switches_before_lift = core.participants["narrow"].layer_switches
    bottleneck.capacity = 50_000_000  # the limit is lifted
    for _ in range(6):
        publisher.stream(10.0)
        if layer_of("narrow") == "f":
            break
    assert layer_of("narrow") == "f", core.participants["narrow"].transport.target_bitrate
    assert core.participants["narrow"].layer_switches > switches_before_lift
    assert core.stats.layer_switches >= core.participants["narrow"].layer_switches
    # each decision is an event (the analytics' sfu.layer_switched), the last one to the top layer
    moved = [e for e in room.events if isinstance(e, LayerSwitched) and e.participant_id == "narrow"]
    assert len(moved) == core.participants["narrow"].layer_switches and moved[-1].to_rid == "f", moved
    assert {(e.publisher, e.mid) for e in moved} == {("pub", video_mid_of_pub(core))}
    # the publisher was asked for key frames of the layers switched to, not flooded
    assert sum(publisher.requests.values()) < 40, publisher.requests
    for client in (wide, narrow):
        numbers = frames(client, video_mid[client.name])
        assert numbers == sorted(numbers), client.name
        # a frame shown twice only where the new layer's key frame is the picture the old layer just sent
        switches = core.participants[client.name].layer_switches
        assert len(numbers) - len(set(numbers)) <= switches + 1, (client.name, switches)
        times = [p.timestamp for p in in_order(client, video_mid[client.name])]
        # RTP timestamps of the one outgoing stream never go back across the layer switches
        assert all((b - a) & 0xFFFFFFFF < 0x80000000 for a, b in zip(times, times[1:]))
        # no freeze: between consecutive frames shown at most 500 ms of frames went missing
        gaps = [b - a for a, b in zip(numbers, numbers[1:])]
        assert max(gaps) <= FPS // 2, (client.name, max(gaps))


def test_a_requested_maximum_height_caps_the_layer_at_once_and_lifting_it_climbs_back():
    room = Room(net=ShapedNetwork(3))
    pub = room.join("pub", slots=0, simulcast=("q", "h", "f"))
    room.join("sub", publish=(), slots=1)
    room.connect()
    publisher = layered(room, pub)
    core = room.core
    slot = next(s for s in core.participants["sub"].slots if s.kind == "video")
    video_mid = next(m for m, p in core.participants["pub"].publications.items() if p.kind == "video")

    def layer() -> str | None:
        found = slot.publication.by_ssrc.get(slot.downtrack.rewriter.source)
        return found.rid if found else None

    publisher.stream(12.0)
    assert layer() == "f"
    core.request_max_height("sub", "pub", video_mid, 360, room.net.now)  # a smaller tile
    publisher.stream(1.0)  # the switch waits for h's key frame only
    assert layer() == "h"
    core.request_max_height("sub", "pub", video_mid, None, room.net.now)
    publisher.stream(5.0)
    assert layer() == "f"
    with pytest.raises(UsageError):
        core.request_max_height("sub", "pub", "nope", 360, room.net.now)


def test_the_slots_carry_the_heights_of_the_tracks_layers_once_their_key_frames_came():
    """What a watch page's quality menu offers: the subscriber is told its slot again when the layers'
    heights become known, once (the same heights again tell nobody)."""
    room = Room(net=ShapedNetwork(5))
    pub = room.join("pub", slots=0, simulcast=("q", "h", "f"))
    room.join("sub", publish=(), slots=1)
    room.connect()
    core = room.core

    def video(slots) -> object:
        return next(s for s in slots if s.kind == "video")

    def told() -> list:
        return [e for e in room.events if isinstance(e, SlotsChanged) and e.participant_id == "sub"]

    assert video(core.slots("sub")).heights == ()  # no key frame yet
    publisher = layered(room, pub)
    publisher.stream(2.0)
    assert video(core.slots("sub")).heights == (180, 360, 720)
    assert told() and video(told()[-1].slots).heights == (180, 360, 720), told()
    assert next(s for s in core.slots("sub") if s.kind == "audio").heights == ()
    count = len(told())
    publisher.stream(2.0)
    assert len(told()) == count


def test_a_layer_the_publisher_stops_is_left_without_a_freeze():
    """A browser short of bitrate stops its top layer at once: the subscriber on it moves to the next
    one once the others started PAUSED_FRAMES frames without it (not after LAYER_TIMEOUT), and back later."""
    room = Room(net=ShapedNetwork(5))
    pub = room.join("pub", slots=0, simulcast=("q", "h", "f"))
    sub = room.join("sub", publish=(), slots=1)
    room.connect()
    publisher = layered(room, pub)
    slot = next(s for s in room.core.participants["sub"].slots if s.kind == "video")
    mid = next(m for m, k in sub.slots.items() if k == "video")

    def layer() -> str | None:
        found = slot.publication.by_ssrc.get(slot.downtrack.rewriter.source)
        return found.rid if found else None

    publisher.stream(12.0)
    assert layer() == "f"
    publisher.paused = {"f"}
    publisher.stream(PAUSED_FRAMES / FPS + 0.1)  # noticed within PAUSED_FRAMES frames, then h's key frame
    assert layer() == "h"
    publisher.paused = set()
    publisher.stream(6.0)
    assert layer() == "f"
    numbers = frames(sub, mid)
    assert numbers == sorted(numbers) and max(b - a for a, b in zip(numbers, numbers[1:])) <= FPS // 2


def test_a_track_that_sends_nothing_takes_no_share_of_the_budget():
    """A subscriber given a simulcast camera and a track that sends nothing (as a page's screen section
    before a share) gives the camera its whole video budget: on a 1.8 Mbit/s link, which takes the top
    layer (~880 kbit/s) but not twice that, it climbs to the top layer as if alone. Once the silent track
    sends, the two share it."""
    net = ShapedNetwork(11)
    room = Room(net=net)
    pub = room.join("pub", slots=0, simulcast=("q", "h", "f"))
    room.join("silent", publish=("video",), slots=0)
    room.join("sub", publish=(), slots=2)
    net.shaped["192.0.2.3"] = Bottleneck(1_800_000, delay=0.01, max_queue_delay=0.2)  # sub's (the third)
    room.connect()
    publisher = layered(room, pub)
    subscriber = room.core.participants["sub"]
    camera = next(s for s in subscriber.slots if s.kind == "video" and s.publication.owner.id == "pub")
    silent = next(s for s in subscriber.slots if s.kind == "video" and s.publication.owner.id == "silent")

    def layer() -> str | None:
        found = camera.publication.by_ssrc.get(camera.downtrack.rewriter.source)
        return found.rid if found else None

    publisher.stream(20.0)
    assert layer() == "f", (layer(), subscriber.transport.target_bitrate)
    assert not silent.publication.sending(room.net.now)
    # the silent participant starts sending (a small picture): the camera's share halves, it goes down
    other = room.clients["silent"]
    for _ in range(40):
        room.send(other, other.video_packet(room.net.now, other.frame == 0))
        publisher.stream(0.05)
    assert silent.publication.sending(room.net.now)
    assert layer() in ("q", "h"), (layer(), subscriber.transport.target_bitrate)


def test_a_track_that_sends_nothing_does_not_lower_the_remb_to_a_publisher():
    """The REMB to a publisher without simulcast is what its best subscriber's slot may take: a second
    video slot of that subscriber whose track sends nothing takes no share of it (before, it halved it)."""
    net = ShapedNetwork(12)
    room = Room(net=net)
    pub = room.join("pub", slots=0)
    room.join("silent", publish=("video",), slots=0)
    room.join("sub", publish=(), slots=2)
    net.shaped["192.0.2.3"] = Bottleneck(1_000_000, delay=0.01, max_queue_delay=0.2)  # sub's (the third)
    room.connect()
    Publisher(room, pub).stream(6.0)
    subscriber = room.core.participants["sub"]
    assert sum(1 for s in subscriber.slots if s.kind == "video" and s.publication) == 2
    remb = pub.transport.estimator._remb
    assert remb is not None and remb >= 0.9 * (subscriber.transport.target_bitrate - 40_000), (
        remb, subscriber.transport.target_bitrate)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.permutations(["q", "h", "f"]), min_size=3, max_size=30), st.integers(0, 2**32 - 1),
       st.integers(0, 3))
def test_the_layers_packets_in_any_order_or_lagging_never_read_as_a_pause(orders, base, lag):
    """Each picture's layers arrive in any order (a pacer's choice), and the top one up to ``lag`` pictures
    late (a large picture takes longer): none is taken for paused. A layer that stops is, once the others
    started PAUSED_FRAMES frames each."""
    publication = Publication(None, "1", "video", {96: "VP8"}, rids=("q", "h", "f"))  # type: ignore[arg-type]
    by_rid = {la.rid: la for la in publication.layers}
    now = 0.0

    def packet(rid: str, picture: int) -> bool:
        layer = by_rid[rid]
        layer.meter.add(1000, now)
        return publication.note_packet(layer, (base + 3000 * picture) & 0xFFFFFFFF)

    for n, order in enumerate(orders):
        now = n / FPS
        for rid in order:
            picture = n - lag if rid == "f" else n
            if picture >= 0:
                assert packet(rid, picture) and not packet(rid, picture)  # its first packet starts it, not the next
            assert not any(publication.paused(la, now) for la in publication.layers if la.timestamp is not None), (
                n, order)
        assert not packet("q", n - 1)  # an older one (a repaired packet) starts nothing
    for n in range(len(orders), len(orders) + PAUSED_FRAMES):  # f stops
        now = n / FPS
        for rid in ("q", "h"):
            packet(rid, n)
    assert publication.paused(by_rid["f"], now)
    assert not publication.paused(by_rid["q"], now) and not publication.paused(by_rid["h"], now)


def test_each_layer_knows_the_bytes_of_its_latest_key_frame():
    """What a switch up to a layer waits for (netcore.sfu.allocator.KEYFRAME_TIME): every packet of the
    layer's latest key frame counted, not its later frames; a new key frame starts the count again."""
    room = Room(net=ShapedNetwork(6))
    pub = room.join("pub", slots=0, simulcast=("q", "h", "f"))
    room.join("sub", publish=(), slots=1)
    room.connect()
    publisher = layered(room, pub)
    publisher.stream(1.0)
    publication = next(p for p in room.core.participants["pub"].publications.values() if p.kind == "video")

    def counted() -> dict[str, int]:
        return {layer.rid: layer.keyframe_bytes for layer in publication.layers}

    first = counted()
    for rid, size in SIZES.items():
        packets = -(-(size + 14) // 1000)  # key-frame header, frame number and payload in 1000-byte chunks
        assert size + 14 <= first[rid] <= size + 14 + packets * 100, (rid, first)  # + RTP headers, extensions
    publisher.stream(1.0)
    assert counted() == first  # delta frames since
    publisher.paused.add("h")
    publisher.stream(0.2)
    publisher.sizes = {**SIZES, "h": 2 * SIZES["h"]}
    publisher.paused.clear()  # h resumes with a key frame of twice the size
    publisher.stream(0.2)
    assert counted()["h"] >= 2 * SIZES["h"] and counted()["f"] == first["f"], counted()
