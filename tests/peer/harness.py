"""Two media transports on the simulated network, and media sources and sinks that check what arrives.

:func:`make_call` builds two :class:`MediaTransport` s (A controlling and
DTLS client, B controlled and DTLS server, or ICE-lite) on a
:class:`~netcore.testing.simnet.Network` in virtual time; :class:`VideoSource`
encodes :class:`SyntheticCamera` frames and sends them; :class:`VideoSink`
puts received packets back into frames, strictly in order (it waits for a
missing packet rather than skipping a frame), decodes them and reads the
frame numbers back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netcore.dtls.certificate import DtlsCertificate
from netcore.media.codecs import AudioDecoder, AudioEncoder, VideoDecoder, VideoEncoder
from netcore.media.synthetic import SyntheticCamera, SyntheticMicrophone, read_frame_number
from netcore.peer.config import CodecConfig, MediaConfig, TransportConfig
from netcore.peer.events import CandidateGathered, RtpReceived, TransportConnected
from netcore.peer.transport import MediaTransport, TransportState
from netcore.rtp.extensions import URI_MID, URI_TRANSPORT_CC
from netcore.rtp.packet import RtpPacket
from netcore.rtp.sequence import SequenceUnwrapper
from netcore.rtp.vp8 import vp8_starts_frame
from netcore.testing.nodes import counter_random
from netcore.testing.simnet import PUBLIC, Link, Network, Node

VIDEO_PT, RTX_PT, AUDIO_PT = 96, 97, 111
A_IP, B_IP = "198.51.100.1", "203.0.113.10"
_CERTS: dict[str, DtlsCertificate] = {}


def certificate(name: str) -> DtlsCertificate:
    if name not in _CERTS:
        _CERTS[name] = DtlsCertificate.generate()
    return _CERTS[name]


def media_configs(side: str, *, rtx: bool = True, nack: bool = True) -> tuple[MediaConfig, ...]:
    """Audio mid "0" and video mid "1"; A sends SSRCs 1xx, B sends 2xx (both directions)."""
    base = 100 if side == "a" else 200
    video = CodecConfig(VIDEO_PT, "VP8", 90000, RTX_PT if rtx else None, nack=nack)
    audio = CodecConfig(AUDIO_PT, "opus", 48000, nack=False, pli=False)
    return (
        MediaConfig("0", "audio", (audio,), send_ssrc=base + 1),
        MediaConfig("1", "video", (video,), send_ssrc=base + 2, send_rtx_ssrc=(base + 3) if rtx else None),
    )


def transport_config(side: str, *, rtx: bool = True, twcc: bool = True, mid: bool = True, rsize: bool = False,
                     lite: bool = False, nack: bool = True, **options: Any) -> TransportConfig:
    other = "b" if side == "a" else "a"
    extensions = []
    if mid:
        extensions.append((1, URI_MID))
    if twcc:
        extensions.append((3, URI_TRANSPORT_CC))
    return TransportConfig(
        certificate=certificate(side),
        dtls_role="client" if side == "a" else "server",
        remote_fingerprints=(("sha-256", certificate(other).fingerprint()),),
        media=media_configs(side, rtx=rtx, nack=nack),
        ice_controlling=side == "a",
        ice_lite=lite and side == "b",
        local_ufrag=f"ufrag{side}",
        local_pwd=f"password-of-side-{side}-0123456789",
        remote_ufrag=f"ufrag{other}",
        remote_pwd=f"password-of-side-{other}-0123456789",
        header_extensions=tuple(extensions),
        rtcp_rsize=rsize,
        cname=f"cname-{side}",
        random=counter_random(1 if side == "a" else 2),
        **options,
    )


@dataclass
class Call:
    net: Network
    a: MediaTransport
    b: MediaTransport
    node_a: Node
    node_b: Node
    connected_at: dict[str, float] = field(default_factory=dict)

    def events(self, side: str, kind: type) -> list:
        node = self.node_a if side == "a" else self.node_b
        return [e for e in node.events if isinstance(e, kind)]

    def connect(self, until: float = 10.0) -> None:
        assert self.net.run(until=until, stop=lambda: self.a.state is TransportState.CONNECTED
                            and self.b.state is TransportState.CONNECTED), (self.a.state, self.b.state)

    def run(self, seconds: float, stop=None) -> bool:
        return self.net.run(until=self.net.now + seconds, stop=stop)


def make_call(seed: int = 1, *, link_a: Link | None = None, link_b: Link | None = None, config_a: dict | None = None,
              config_b: dict | None = None, forwarder: Any = None) -> Call:
    """Two transports on a public network; ``forwarder`` (optional) sits between them (see test_bandwidth)."""
    net = Network(seed)
    net.add_host(A_IP, PUBLIC, link_a or Link(delay=0.02))
    net.add_host(B_IP, PUBLIC, link_b or Link(delay=0.02))
    a = MediaTransport(transport_config("a", **(config_a or {})))
    b = MediaTransport(transport_config("b", **(config_b or {})))
    a.ice.add_local_address((A_IP, 5000))
    b.ice.add_local_address((B_IP, 6000))
    node_a = net.add_node(a, [(A_IP, 5000)])
    node_b = net.add_node(b, [(B_IP, 6000)])
    call = Call(net, a, b, node_a, node_b)
    for side, node in (("a", node_a), ("b", node_b)):
        def seen(event, side=side):
            if isinstance(event, TransportConnected):
                call.connected_at[side] = net.now
        node.on_event = seen
    a.start(0.0)
    b.start(0.0)
    node_a.flush()
    node_b.flush()
    for source, target, node in ((call, b, node_b), (call, a, node_a)):
        side = "a" if target is b else "b"
        for event in source.events(side, CandidateGathered):
            candidate = event.candidate
            if forwarder is not None:
                candidate = forwarder.candidate_for(side, candidate)
            target.add_remote_candidate(candidate, 0.0)
        target.add_remote_candidate(None, 0.0)
        node.flush()
    return call


class VideoSource:
    """SyntheticCamera -> VideoEncoder -> RTP packets -> ``transport.send_rtp`` at the camera's rate."""

    def __init__(self, call: Call, side: str, *, width: int = 320, height: int = 240, fps: float = 30.0,
                 bitrate: int = 300_000, follow_target: bool = False, max_payload_size: int = 1200,
                 payload_type: int = VIDEO_PT) -> None:
        self.call = call
        self.transport = call.a if side == "a" else call.b
        self.node = call.node_a if side == "a" else call.node_b
        self.camera = SyntheticCamera(width, height, fps)
        self.encoder = VideoEncoder("VP8", target_bitrate=bitrate, max_width=width, max_height=height, max_fps=fps,
                                    max_payload_size=max_payload_size)
        self.ssrc = self.transport.config.media[1].send_ssrc
        self.seq = 0
        self.sent: list[int] = []  # frame numbers sent
        self.keyframes: list[int] = []  # frame numbers coded as key frames
        self.follow_target = follow_target
        self.payload_type = payload_type

    def start(self, count: int, at: float | None = None) -> None:
        start = self.call.net.now if at is None else at
        for n in range(count):
            self.call.net.call_at(start + n / self.camera.fps, self._send_frame, n)

    def _send_frame(self, number: int) -> None:
        now = self.call.net.now
        if self.follow_target:
            self.encoder.set_target_bitrate(int(self.transport.target_bitrate * 0.9))
        frame = self.encoder.encode(self.camera.frame(number))
        if frame is None:
            return
        self.sent.append(number)
        if frame.keyframe:
            self.keyframes.append(number)
        last = len(frame.payloads) - 1
        for i, payload in enumerate(frame.payloads):
            packet = RtpPacket.build(payload_type=self.payload_type, sequence_number=self.seq, timestamp=frame.timestamp,
                                     ssrc=self.ssrc, payload=payload, marker=i == last)
            self.seq = (self.seq + 1) & 0xFFFF
            self.transport.send_rtp(packet, now)
        self.node.flush()


class VideoSink:
    """RtpReceived of the video mid -> frames in order -> VideoDecoder -> frame numbers.

    Strict: frame ``n`` (RTP timestamp ``3000 n`` at 30 fps) is decoded only
    once all its packets are there, and nothing after it before; a frame
    never completed holds every later one back.
    """

    def __init__(self, call: Call | None = None, side: str = "b", fps: float = 30.0) -> None:
        self.decoder = VideoDecoder("VP8")
        self.unwrap = SequenceUnwrapper()
        self.frames: dict[int, dict[int, RtpPacket]] = {}  # timestamp -> unwrapped seq -> packet
        self.ticks = round(90000 / fps)
        self.next_number = 0
        self.numbers: list[int | None] = []
        self.retransmitted = 0
        self.keyframes: list[int] = []
        if call is not None:
            node = call.node_a if side == "a" else call.node_b
            previous = node.on_event

            def chained(event):
                if previous is not None:
                    previous(event)
                self.on_event(event)
            node.on_event = chained

    def on_event(self, event) -> None:
        if isinstance(event, RtpReceived) and event.mid == "1":
            self.add(event.packet, event.retransmitted)

    def add(self, packet: RtpPacket, retransmitted: bool) -> None:
        self.retransmitted += retransmitted
        self.frames.setdefault(packet.timestamp, {})[self.unwrap.unwrap(packet.sequence_number)] = packet
        while self._decode_next():
            pass

    def _decode_next(self) -> bool:
        packets = self.frames.get((self.next_number * self.ticks) & 0xFFFFFFFF)
        if not packets:
            return False
        starts = [s for s, p in packets.items() if vp8_starts_frame(p.payload)]
        ends = [s for s, p in packets.items() if p.marker]
        if not starts or not ends or any(s not in packets for s in range(starts[0], ends[0] + 1)):
            return False
        payloads = [packets[s].payload for s in range(starts[0], ends[0] + 1)]
        del self.frames[(self.next_number * self.ticks) & 0xFFFFFFFF]
        self.next_number += 1
        for picture in self.decoder.decode(payloads):
            self.numbers.append(read_frame_number(picture))
        return True


class AudioSource:
    """SyntheticMicrophone -> Opus -> ``send_rtp`` every 20 ms."""

    def __init__(self, call: Call, side: str) -> None:
        self.call = call
        self.transport = call.a if side == "a" else call.b
        self.node = call.node_a if side == "a" else call.node_b
        self.mic = SyntheticMicrophone()
        self.encoder = AudioEncoder()
        self.ssrc = self.transport.config.media[0].send_ssrc
        self.seq = 0
        self.payloads: list[bytes] = []

    def start(self, count: int) -> None:
        for n in range(count):
            self.call.net.call_at(self.call.net.now + n * 0.02, self._send, n)

    def _send(self, number: int) -> None:
        for frame in self.encoder.encode(self.mic.frame(number)):
            payload = frame.payloads[0]
            self.payloads.append(payload)
            packet = RtpPacket.build(payload_type=AUDIO_PT, sequence_number=self.seq, timestamp=frame.timestamp,
                                     ssrc=self.ssrc, payload=payload)
            self.seq += 1
            self.transport.send_rtp(packet, self.call.net.now)
        self.node.flush()


class AudioSink:
    def __init__(self, call: Call, side: str) -> None:
        node = call.node_a if side == "a" else call.node_b
        self.decoder = AudioDecoder()
        self.payloads: list[bytes] = []
        self.sequence_numbers: list[int] = []
        self.samples = 0
        previous = node.on_event

        def on_event(event):
            if previous is not None:
                previous(event)
            if isinstance(event, RtpReceived) and event.mid == "0":
                self.payloads.append(event.packet.payload)
                self.sequence_numbers.append(event.packet.sequence_number)
                for frame in self.decoder.decode(event.packet.payload):
                    self.samples += frame.samples
        node.on_event = on_event
