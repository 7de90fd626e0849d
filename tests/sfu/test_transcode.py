"""Transcoding through the call server on the simulated network (virtual time, real ICE/DTLS/SRTP/TWCC).

A publisher sends one VP8-shaped 720p layer (about 880 kbit/s); two
subscribers watch it, one of them behind a 300 kbit/s bottleneck. The
shaped subscriber's budget stays below the publisher's only layer, so the
core asks its planner for the ladder: a ``TranscodeStarted`` names the
worker, and a simulated worker (a client joining with ``job=``) takes the
source from its own slot and sends two renditions (180p and 360p, VP8-shaped,
carrying the source frame numbers; key frames where the source has one or
where a rendition was asked for one). The renditions become layers of the
original track: the shaped subscriber is switched to one, the other stays on
the original. The worker's link going (``worker_gone``) puts the subscriber
back on the original; a second worker takes the job again; the limit lifted,
the subscriber climbs back to the original and the job stops after its hold.
"""

from __future__ import annotations

import struct

import pytest

from netcore.errors import UsageError
from netcore.peer.config import SendLayer
from netcore.peer.events import KeyFrameRequested
from netcore.rtp.packet import RtpPacket
from netcore.rtp.vp8 import Vp8Descriptor
from netcore.sfu.events import TranscodeStarted, TranscodeStopped
from netcore.testing.bottleneck import Bottleneck
from tests.sfu.harness import Client, Publisher, Room
from tests.sfu.test_simulcast import ShapedNetwork, frames

FPS = 30
SOURCE = (720, 3600)  # height, bytes per frame: ~880 kbit/s at 30 frames/s
RENDITIONS = {"q": (180, 250), "h": (360, 1100)}  # the planner's ladder (simulcast_ladder), ~70 and ~280 kbit/s
MAX_GAP = FPS // 2  # frame numbers: at most 500 ms missing between two received


class SingleLayerPublisher(Publisher):
    """One 720p layer, a key frame first and whenever one is asked for."""

    def frame(self, now: float):
        client = self.client
        layer = SendLayer("", client.send["video"])
        key = client.frame == 0 or self.room.keyframe_wanted(client)
        packets = client.layer_frame(now, layer, SOURCE[0], SOURCE[1], key)
        client.frame += 1
        return packets


class SimulatedWorker:
    """A transcoding worker's client: each source frame it receives becomes a frame of each rendition
    (the same frame number and timestamp); key frames on the source's and on request."""

    def __init__(self, room: Room, client: Client) -> None:
        self.room, self.client = room, client
        self.seen = 0
        self.requests_seen = 0
        self.keyframes_requested: dict[str, int] = {rid: 0 for rid in RENDITIONS}
        self.force = {layer.ssrc: True for layer in client.renditions}
        self.names = dict(zip([la.ssrc for la in client.renditions], RENDITIONS))

    def work(self) -> None:
        client = self.client
        events = client.node.events
        for event in events[self.requests_seen:]:
            if isinstance(event, KeyFrameRequested) and event.ssrc in self.force:
                self.force[event.ssrc] = True
                self.keyframes_requested[self.names[event.ssrc]] += 1
        self.requests_seen = len(events)
        mid = next(m for m, k in client.slots.items() if k == "video")
        packets = client.received.get(mid, [])
        for packet in packets[self.seen:]:
            payload = packet.payload
            descriptor, pos = Vp8Descriptor.parse(payload)
            if not descriptor.start_of_partition:
                continue
            key = not payload[pos] & 0x01
            number = struct.unpack_from("!I", payload, pos + 3 + (7 if key else 0))[0]
            out = []
            for layer, (name, (height, size)) in zip(client.renditions, RENDITIONS.items()):
                keyframe = key or self.force[layer.ssrc]
                self.force[layer.ssrc] = False
                client.frame = number
                out += client.layer_frame(self.room.net.now, layer, height, size, keyframe)
            self.room.send(client, out)
        self.seen = len(packets)


class Scenario:
    def __init__(self) -> None:
        self.net = ShapedNetwork(11)
        self.room = Room(net=self.net)
        core = self.core = self.room.core
        core.config.transcoding = True
        core.planner.stop_after = 5.0
        pub = self.room.join("pub", slots=0)
        self.wide = self.room.join("wide", publish=(), slots=1)
        self.narrow = self.room.join("narrow", publish=(), slots=1)
        self.bottleneck = self.net.shaped["192.0.2.3"] = Bottleneck(300_000, delay=0.01, max_queue_delay=0.2)
        self.room.connect()
        self.publisher = SingleLayerPublisher(self.room, pub, FPS)
        self.workers: list[SimulatedWorker] = []
        self.started = 0

    def stream(self, seconds: float, step: float = 0.01) -> None:
        """The publisher's frames and the workers' renditions; a worker client joins for each job started."""
        room = self.room
        end = room.net.now + seconds
        next_video = room.net.now
        while room.net.now < end:
            now = room.net.now
            if now >= next_video - 1e-9:
                room.send(self.publisher.client, self.publisher.frame(now))
                next_video += 1.0 / FPS
            room.run(step)
            for worker in self.workers:
                if worker.client.name in self.core.participants:
                    worker.work()
            started = [e for e in room.events if isinstance(e, TranscodeStarted)]
            for event in started[self.started:]:
                self.join_worker(event)
            self.started = len(started)

    def join_worker(self, event: TranscodeStarted) -> None:
        name = f"transcode-{event.worker}-{len(self.workers)}"
        assert [r.name for r in event.renditions] == list(RENDITIONS)
        for gone in [n for n in self.room.clients if n not in self.core.participants]:
            del self.room.clients[gone]  # a worker the server dropped
        client = self.room.join(name, publish=(), slots=1, job=event.job_id, renditions=len(event.renditions))
        self.room.connect()
        self.workers.append(SimulatedWorker(self.room, client))

    def layer_of(self, name: str):
        """The layer the subscriber's slot forwards: None (the original) or a rendition's RID."""
        slot = next(s for s in self.core.participants[name].slots if s.kind == "video")
        layer = slot.publication.by_ssrc.get(slot.downtrack.rewriter.source)
        assert layer is not None
        return layer.rid if layer.owner is not None else None

    def numbers(self, client: Client) -> list[int]:
        return frames(client, next(m for m, k in client.slots.items() if k == "video"))


def assert_no_freeze(numbers: list[int]) -> None:
    assert numbers == sorted(numbers)
    gaps = [b - a for a, b in zip(numbers, numbers[1:])]
    assert max(gaps) <= MAX_GAP, max(gaps)


def test_a_subscriber_below_the_only_layer_gets_a_rendition_and_falls_back_when_its_worker_goes():
    s = Scenario()
    core = s.core
    s.stream(5.0)
    assert not [e for e in s.room.events if isinstance(e, TranscodeStarted)]  # no worker announced: it waits
    core.worker_ready("w1", 4, s.net.now)
    s.stream(12.0)
    started = [e for e in s.room.events if isinstance(e, TranscodeStarted)]
    assert len(started) == 1 and started[0].worker == "w1" and started[0].publisher == "pub"
    assert started[0].source_codec == "VP8"
    assert core.worker_load() == {"w1": (2, 4)}
    assert s.layer_of("wide") is None, "the unshaped subscriber stays on the original"
    assert s.layer_of("narrow") in RENDITIONS, core.participants["narrow"].transport.target_bitrate
    worker = s.workers[0]
    assert sum(worker.keyframes_requested.values()) >= 1  # the switch asked the worker, not the publisher
    # the rendition's frames are the source's: the numbers go on, no freeze across the switch
    assert_no_freeze(s.numbers(s.narrow))
    assert_no_freeze(s.numbers(s.wide))

    # the worker's link goes: the subscriber is back on the original at its next key frame
    core.worker_gone("w1", s.net.now)
    s.room.server.flush()
    assert "transcode-w1-0" not in core.participants
    stopped = [e for e in s.room.events if isinstance(e, TranscodeStopped)]
    assert [(e.worker, e.reason) for e in stopped] == [("w1", "worker_gone")]
    before = len(s.numbers(s.narrow))
    s.stream(1.0)
    assert s.layer_of("narrow") is None
    # (the original through the 300 kbit/s link: congested, but its frames arrive and go on in order)
    assert len(s.numbers(s.narrow)) > before
    assert s.numbers(s.narrow) == sorted(s.numbers(s.narrow))

    # a second worker: the job is placed there, the subscriber gets a rendition again
    core.worker_ready("w2", 2, s.net.now)
    s.stream(8.0)
    started = [e for e in s.room.events if isinstance(e, TranscodeStarted)]
    assert [e.worker for e in started] == ["w1", "w2"]
    assert s.layer_of("narrow") in RENDITIONS
    settled = len(s.numbers(s.narrow))
    assert s.numbers(s.narrow) == sorted(s.numbers(s.narrow))

    # the limit lifted: back to the original, and the job stops once its hold is over
    s.bottleneck.capacity = 50_000_000
    for _ in range(8):
        s.stream(5.0)
        if s.layer_of("narrow") is None and [e for e in s.room.events if isinstance(e, TranscodeStopped)][1:]:
            break
    assert s.layer_of("narrow") is None
    stopped = [e for e in s.room.events if isinstance(e, TranscodeStopped)]
    assert [(e.worker, e.reason) for e in stopped] == [("w1", "worker_gone"), ("w2", "unneeded")]
    assert "transcode-w2-1" not in core.participants and core.worker_load() == {"w2": (0, 2)}
    assert_no_freeze(s.numbers(s.narrow)[settled:])  # across the switch from the rendition to the original
    assert_no_freeze(s.numbers(s.wide))


def test_a_worker_cannot_join_for_a_job_that_is_not_running():
    s = Scenario()
    with pytest.raises(UsageError):
        s.room.join("intruder", publish=(), slots=1, job="pub/0/ladder", renditions=2)


def test_the_publisher_leaving_stops_its_jobs_and_the_worker_goes():
    s = Scenario()
    s.core.worker_ready("w1", 2, s.net.now)
    s.stream(8.0)
    assert s.workers and s.workers[0].client.name in s.core.participants
    s.core.leave("pub", s.net.now)
    s.room.server.flush()
    stopped = [e for e in s.room.events if isinstance(e, TranscodeStopped)]
    assert [(e.worker, e.reason) for e in stopped] == [("w1", "source_gone")]
    assert s.workers[0].client.name not in s.core.participants
    assert s.core.worker_load() == {"w1": (0, 2)}


def test_a_subscriber_showing_the_track_small_gets_the_rendition_of_its_size_and_back():
    s = Scenario()
    s.bottleneck.capacity = 50_000_000  # nobody is short: only the request makes a job
    s.core.worker_ready("w1", 2, s.net.now)
    s.stream(4.0)
    assert not [e for e in s.room.events if isinstance(e, TranscodeStarted)]
    mid = next(m for m, p in s.core.participants["pub"].publications.items() if p.kind == "video")
    s.core.request_max_height("wide", "pub", mid, 360, s.net.now)
    s.stream(6.0)  # (the lower rendition first if its key frame came first; up to 360p after the allocator's hold)
    assert s.layer_of("wide") == "h" and s.layer_of("narrow") is None
    switched = len(s.numbers(s.wide))
    s.core.request_max_height("wide", "pub", mid, None, s.net.now)
    s.stream(8.0)
    assert s.layer_of("wide") is None
    assert_no_freeze(s.numbers(s.wide))
    assert switched > FPS and len(s.numbers(s.wide)) > switched + 7 * FPS


def h264_frame(client: Client, layer: SendLayer, now: float, number: int, keyframe: bool):
    """An H.264-shaped frame in one packet: an IDR (NAL type 5) or a non-IDR slice (type 1) NAL unit whose
    payload starts with the frame number."""
    seq = client.seq.get(layer.ssrc, 2000)
    client.seq[layer.ssrc] = (seq + 1) & 0xFFFF
    payload = bytes((0x65 if keyframe else 0x41,)) + struct.pack("!I", number) + bytes(200)
    return RtpPacket.build(payload_type=client.pts["video"], sequence_number=seq,
                           timestamp=int(now * 90000) & 0xFFFFFFFF, ssrc=layer.ssrc, payload=payload, marker=True)


def test_a_subscriber_without_the_source_codec_gets_the_codec_rendition_of_the_same_frames():
    net = ShapedNetwork(5)
    room = Room(net=net)
    core = room.core
    core.config.transcoding = True
    pub = room.join("pub", slots=0)
    h264 = room.join("h264", publish=(), slots=1, video_codecs=("H264",))
    vp8 = room.join("vp8", publish=(), slots=1)
    room.connect()
    publisher = SingleLayerPublisher(room, pub, FPS)
    core.worker_ready("w1", 1, net.now)
    mid = next(m for m, k in h264.slots.items() if k == "video")
    worker, seen, requests, force = None, 0, 0, True
    end = net.now + 6.0
    while net.now < end:
        room.send(pub, publisher.frame(net.now))
        room.run(1.0 / FPS)
        started = [e for e in room.events if isinstance(e, TranscodeStarted)]
        if started and worker is None:
            assert [(r.name, r.codec) for r in started[0].renditions] == [("h264", "H264")]
            assert len(started) == 1 and started[0].job_id.endswith("/H264")
            worker = room.join("transcode-w1", publish=(), slots=1, job=started[0].job_id, renditions=1,
                               rendition_codecs=("H264",))
            room.connect()
        if worker is None:
            continue
        events = worker.node.events
        force = force or any(isinstance(e, KeyFrameRequested) for e in events[requests:])
        requests = len(events)
        source = worker.received.get(next(m for m, k in worker.slots.items() if k == "video"), [])
        for packet in source[seen:]:  # each source frame (VP8-shaped, first packets) made into H.264
            descriptor, pos = Vp8Descriptor.parse(packet.payload)
            if descriptor.start_of_partition:
                key = not packet.payload[pos] & 0x01
                number = struct.unpack_from("!I", packet.payload, pos + 3 + (7 if key else 0))[0]
                room.send(worker, [h264_frame(worker, worker.renditions[0], net.now, number, key or force)])
                force = False
        seen = len(source)
    got = [p for p in h264.received.get(mid, [])]
    assert got and {p.payload_type for p in got} == {h264.pts["video"]} == {worker.pts["video"]}
    numbers = [struct.unpack_from("!I", p.payload, 1)[0] for p in got]
    assert got[0].payload[0] & 0x1F == 5  # it starts on a key frame
    assert numbers == sorted(numbers) and len(numbers) > 3 * FPS
    assert set(numbers) <= set(range(pub.frame))  # the source's frames
    assert frames(vp8, next(m for m, k in vp8.slots.items() if k == "video"))  # the other one: the VP8 original


def test_a_job_lost_with_its_worker_is_forgotten_once_nobody_needs_it():
    s = Scenario()
    s.core.worker_ready("w1", 2, s.net.now)
    s.stream(8.0)
    assert len(s.core._jobs) == 1
    s.core.leave("narrow", s.net.now)  # the only subscriber short of the layer
    s.core.worker_gone("w1", s.net.now)
    s.room.server.flush()
    assert [(e.worker, e.reason) for e in s.room.events if isinstance(e, TranscodeStopped)] == [("w1", "worker_gone")]
    assert s.core._jobs == {} and s.core.worker_load() == {}
