"""Call-server rooms on the simulated network: one :class:`SfuCore` and client transports, virtual time.

Each client is a :class:`MediaTransport` configured from a real offer/answer
(our :class:`Negotiator` offers, :meth:`SfuCore.join` answers), with a
:class:`Link` of its own; clients send VP8-shaped and Opus-shaped RTP
(payload descriptors and key-frame bits as RFC 7741 has them, frame numbers
in the payload) so what arrives can be checked packet by packet.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

from netcore.dtls.certificate import DtlsCertificate
from netcore.peer.config import SendLayer, config_from_negotiated
from netcore.peer.events import KeyFrameRequested, RtpReceived, TransportConnected
from netcore.peer.transport import MediaTransport, TransportState
from netcore.rtp.extensions import URI_AUDIO_LEVEL
from netcore.rtp.packet import RtpPacket
from netcore.rtp.vp8 import Vp8Descriptor
from netcore.sdp.attributes import Fingerprint
from netcore.sdp.codecs import VIDEO_CODECS
from netcore.sdp.jsep import Negotiator
from netcore.sdp.model import LocalTransport, MediaIntent
from netcore.sdp.wire import parse
from netcore.sfu import fastpath
from netcore.sfu.core import SfuConfig, SfuCore
from netcore.testing.nodes import counter_random
from netcore.testing.simnet import Link, Network, Node

SERVER = ("10.0.0.1", 40000)
_CERTS: list[DtlsCertificate] = []


def certificate(i: int) -> DtlsCertificate:
    while len(_CERTS) <= i:
        _CERTS.append(DtlsCertificate.generate())
    return _CERTS[i]


@dataclass
class Client:
    name: str
    transport: MediaTransport
    node: Node
    send: dict[str, int]  # kind -> our SSRC
    slots: dict[str, str]  # our receive mid -> kind
    pts: dict[str, int]
    received: dict[str, list[RtpPacket]] = field(default_factory=dict)  # mid -> packets
    frame: int = 0
    seq: dict[int, int] = field(default_factory=dict)
    picture_id: int = 0
    audio_level_id: int | None = None
    deaf: int = 0  # key frame requests this client ignores (a publisher that lost or dropped them)
    layers: tuple[SendLayer, ...] = ()  # simulcast: its video layers, lowest first
    renditions: tuple[SendLayer, ...] = ()  # a transcoding worker's send sections (rid: the mid)

    def on_event(self, event: object) -> None:
        if isinstance(event, RtpReceived):
            self.received.setdefault(event.mid, []).append(event.packet)

    def video_packet(self, now: float, keyframe: bool, size: int = 300, ssrc: int | None = None) -> list[RtpPacket]:
        """One frame as two packets (descriptor with picture id, P bit, frame number)."""
        ssrc = ssrc or self.send["video"]
        pid = self.picture_id
        self.picture_id = (pid + 1) & 0x7FFF
        body = bytes((0x00 if keyframe else 0x01,)) + struct.pack("!I", self.frame) + bytes(size)
        first = Vp8Descriptor(True, 0, picture_id=pid).serialize() + body[: len(body) // 2]
        rest = Vp8Descriptor(False, 0, picture_id=pid).serialize() + body[len(body) // 2:]
        ts = int(now * 90000) & 0xFFFFFFFF
        out = []
        for i, payload in enumerate((first, rest)):
            seq = self.seq.get(ssrc, 1000)
            self.seq[ssrc] = (seq + 1) & 0xFFFF
            out.append(RtpPacket.build(payload_type=self.pts["video"], sequence_number=seq, timestamp=ts,
                                       ssrc=ssrc, payload=payload, marker=i == 1))
        self.frame += 1
        return out

    def layer_frame(self, now: float, layer: SendLayer, height: int, size: int, keyframe: bool) -> list[RtpPacket]:
        """One frame of one simulcast layer (the same frame number in every layer), in packets of at most
        1000 bytes; a key frame carries the VP8 key-frame header with its size (RFC 6386 section 9.1)."""
        pid = self.seq.get(-layer.ssrc, 0)
        self.seq[-layer.ssrc] = (pid + 1) & 0x7FFF
        header = bytes((0x00 if keyframe else 0x01, 0, 0))
        header += b"\x9d\x01\x2a" + struct.pack("<HH", height * 16 // 9, height) if keyframe else b""
        body = header + struct.pack("!I", self.frame) + bytes(size)
        chunks = [body[i:i + 1000] for i in range(0, len(body), 1000)]
        ts = int(now * 90000) & 0xFFFFFFFF
        out = []
        for i, chunk in enumerate(chunks):
            seq = self.seq.get(layer.ssrc, 1000)
            self.seq[layer.ssrc] = (seq + 1) & 0xFFFF
            payload = Vp8Descriptor(i == 0, 0, picture_id=pid).serialize() + chunk
            out.append(RtpPacket.build(payload_type=self.pts["video"], sequence_number=seq, timestamp=ts,
                                       ssrc=layer.ssrc, payload=payload, marker=i == len(chunks) - 1))
        return out

    def audio_packet(self, now: float, level: int = 127) -> RtpPacket:
        ssrc = self.send["audio"]
        seq = self.seq.get(ssrc, 5000)
        self.seq[ssrc] = (seq + 1) & 0xFFFF
        extensions = [(self.audio_level_id, bytes((0x80 | level,)))] if self.audio_level_id else []
        return RtpPacket.build(payload_type=self.pts["audio"], sequence_number=seq,
                               timestamp=int(now * 48000) & 0xFFFFFFFF, ssrc=ssrc, payload=bytes(40),
                               extensions=extensions)


class Room:
    """A server and clients; ``run`` advances virtual time."""

    def __init__(self, seed: int = 1, net: Network | None = None, server: tuple[str, int] = SERVER,
                 first_client: int = 0, wrap=None) -> None:
        """``server``: its address; ``first_client``: its clients' numbering starts after it (several
        servers on one network); ``wrap``: makes the node's core of the SfuCore (a CascadeCore)."""
        self.net = net or Network(seed)
        self.net.add_host(server[0], link=Link(delay=0.005))
        self.core = SfuCore(SfuConfig(certificate(0), [server], random=counter_random(100 + first_client)))
        if fastpath.wanted():  # NETCORE_SFU_FORWARD=python runs these tests on the Python path
            self.core.fastpath = fastpath.FastPath({server: None})
        self.node_core = wrap(self.core) if wrap is not None else self.core
        self.server = self.net.add_node(self.node_core, [server])
        self.clients: dict[str, Client] = {}
        self.events = self.server.events
        self._count = first_client

    def join(self, name: str, *, publish: tuple[str, ...] = ("audio", "video"), slots: int = 2,
             link: Link | None = None, room: str = "r1", simulcast: tuple[str, ...] = (),
             job: str | None = None, renditions: int = 0, video_codecs: tuple[str, ...] | None = None,
             rendition_codecs: tuple[str, ...] | None = None) -> Client:
        """A client; ``job``: a transcoding worker for that job, sending ``renditions`` video sections
        (offering ``rendition_codecs`` only, if given); ``video_codecs``: the only video codecs its
        receive sections offer."""
        self._count += 1
        ip = f"192.0.2.{self._count}"
        if ip not in self.net._links:
            self.net.add_host(ip, link=link or Link(delay=0.01))
        cert = certificate(self._count)
        random = counter_random(self._count)
        negotiator = Negotiator(LocalTransport((Fingerprint("sha-256", cert.fingerprint()),)), random=random)
        send = {kind: 0x1000 * self._count + i + 1 for i, kind in enumerate(publish)}
        intents = [MediaIntent(kind, direction="sendonly", ssrc=send[kind],
                               rtx_ssrc=send[kind] + 0x100 if kind == "video" else None,
                               simulcast=simulcast if kind == "video" else ()) for kind in publish]
        layers = tuple(SendLayer(rid, send["video"] + 0x10 * i, send["video"] + 0x10 * i + 0x100)
                       for i, rid in enumerate(simulcast))
        codecs = tuple(c for c in VIDEO_CODECS if c.name in video_codecs) if video_codecs else None
        made = [0x1000 * self._count + 0x40 + i for i in range(renditions)]
        made_in = tuple(c for c in VIDEO_CODECS if c.name in rendition_codecs) if rendition_codecs else None
        intents += [MediaIntent("video", direction="sendonly", ssrc=ssrc, rtx_ssrc=ssrc + 0x100, codecs=made_in)
                    for ssrc in made]
        for _ in range(slots):
            intents += [MediaIntent("audio", direction="recvonly"),
                        MediaIntent("video", direction="recvonly", codecs=codecs)]
        offer = negotiator.create_offer(intents)
        answer, _slots = self.core.join(room, name, str(offer), self.net.now, job=job)
        self.server.flush()
        session = negotiator.handle_answer(answer)
        mids = [m.mid for m in session.media]
        send_ssrcs = {mid: (i.ssrc, i.rtx_ssrc) for mid, i in zip(mids, intents) if i.ssrc is not None}
        rendition_layers = tuple(SendLayer(mid, i.ssrc, i.rtx_ssrc) for mid, i in zip(mids, intents)
                                 if i.ssrc in made)
        layer_map = {mid: layers for mid, i in zip(mids, intents) if i.simulcast}
        config = config_from_negotiated(session, cert, send_ssrcs=send_ssrcs, send_layers=layer_map, random=random)
        config = with_rtx_pairs(config, answer)
        transport = MediaTransport(config)
        address = (ip, 5000)
        transport.ice.add_local_address(address)
        node = self.net.add_node(transport, [address])
        pts = {}
        for media in session.media:
            if media.send_codecs and media.kind not in pts:
                pts[media.kind] = media.send_codecs[0].payload_type
        slot_mids = {m.mid: m.kind for m, i in zip(session.media, intents) if i.direction == "recvonly"}
        client = Client(name, transport, node, send, slot_mids, pts, layers=layers, renditions=rendition_layers)
        client.audio_level_id = config.extension_id(URI_AUDIO_LEVEL)
        node.on_event = client.on_event
        transport.start(self.net.now)
        node.flush()
        self.clients[name] = client
        return client

    def run(self, seconds: float) -> None:
        self.net.run(until=self.net.now + seconds)

    def connect(self, until: float = 3.0) -> None:
        self.net.run(until=self.net.now + until, stop=lambda: all(
            c.transport.state is TransportState.CONNECTED for c in self.clients.values())
            and all(p.connected for p in self.core.participants.values()))
        assert all(c.transport.state is TransportState.CONNECTED for c in self.clients.values())

    def send(self, client: Client, packets: list[RtpPacket]) -> None:
        for packet in packets:
            client.transport.send_rtp(packet, self.net.now)
        client.node.flush()

    def stream(self, seconds: float, fps: int = 20, keyframe_every: int = 1000, audio: bool = True,
               senders: list[str] | None = None, levels: dict[str, int] | None = None) -> None:
        """Every sender sends a frame per 1/fps and an audio packet per 20 ms for ``seconds``."""
        names = senders if senders is not None else list(self.clients)
        end = self.net.now + seconds
        step = 0.02 if audio else 1.0 / fps
        next_video = self.net.now
        while self.net.now < end:
            now = self.net.now
            for name in names:
                client = self.clients[name]
                if "audio" in client.send and audio:
                    self.send(client, [client.audio_packet(now, (levels or {}).get(name, 127))])
                if "video" in client.send and now >= next_video - 1e-9:
                    key = client.frame % keyframe_every == 0 or self.keyframe_wanted(client)
                    self.send(client, client.video_packet(now, key))
            if now >= next_video - 1e-9:
                next_video += 1.0 / fps
            self.run(step)

    def keyframe_wanted(self, client: Client) -> bool:
        from netcore.peer.events import KeyFrameRequested
        wanted = [e for e in client.node.events if isinstance(e, KeyFrameRequested) and e.ssrc == client.send.get("video")]
        seen = getattr(client, "_kf_seen", 0)
        client._kf_seen = len(wanted)  # type: ignore[attr-defined]
        fresh = len(wanted) - seen
        while fresh > 0 and client.deaf > 0:
            fresh -= 1
            client.deaf -= 1
        return fresh > 0


class Publisher:
    """Sends a video frame (:meth:`frame`) each 1/fps and an audio packet each ``step`` of virtual time."""

    def __init__(self, room: Room, client: Client, fps: float = 30) -> None:
        self.room, self.client, self.fps = room, client, fps

    def frame(self, now: float) -> list[RtpPacket]:
        """One frame's packets (one VP8-shaped packet by default)."""
        return self.client.video_packet(now, self.room.keyframe_wanted(self.client) or self.client.frame == 0)[:1]

    def stream(self, seconds: float, step: float = 0.01) -> None:
        room, client = self.room, self.client
        end = room.net.now + seconds
        next_video = room.net.now
        while room.net.now < end:
            now = room.net.now
            room.send(client, [client.audio_packet(now)])
            if now >= next_video - 1e-9:
                room.send(client, self.frame(now))
                next_video += 1.0 / self.fps
            room.run(step)


class SimulcastPublisher(Publisher):
    """Every layer's frame at once; a PLI/FIR for a layer makes that layer's next frame a key frame.
    ``heights``/``sizes``: per RID, the key frames' height and the bytes of each frame."""

    def __init__(self, room: Room, client: Client, heights: dict[str, int], sizes: dict[str, int],
                 fps: float = 30) -> None:
        super().__init__(room, client, fps)
        self.heights, self.sizes = heights, sizes
        self.seen = 0
        self.keyframes = {layer.ssrc: True for layer in client.layers}
        self.requests: dict[str, int] = {rid: 0 for rid in heights}
        self.paused: set[str] = set()  # RIDs not sent (a browser short of bitrate stops its top layers)

    def frame(self, now: float) -> list[RtpPacket]:
        client = self.client
        self._take_requests()
        packets = []
        for layer in client.layers:
            if layer.rid in self.paused:
                self.keyframes[layer.ssrc] = True  # it resumes with a key frame
                continue
            key = self.keyframes[layer.ssrc]
            self.keyframes[layer.ssrc] = False
            packets += client.layer_frame(now, layer, self.heights[layer.rid], self.sizes[layer.rid], key)
        client.frame += 1
        return packets

    def _take_requests(self) -> None:
        events = [e for e in self.client.node.events if isinstance(e, KeyFrameRequested)]
        for event in events[self.seen:]:
            for layer in self.client.layers:
                if layer.ssrc == event.ssrc:
                    self.keyframes[layer.ssrc] = True
                    self.requests[layer.rid] += 1
        self.seen = len(events)


def with_rtx_pairs(config, answer: str):
    """The answer's ``a=ssrc-group:FID`` pairs in the client's transport (config_from_negotiated leaves
    them out: the RTX SSRC would otherwise be bound as a media SSRC and every retransmission dropped)."""
    pairs: dict[str, list[tuple[int, int]]] = {}
    for section in parse(answer).media:
        groups = [g for g in section.get_all("ssrc-group") if g.semantics == "FID" and len(g.ssrcs) == 2]
        if section.mid is not None and groups:
            pairs[section.mid] = [(g.ssrcs[0], g.ssrcs[1]) for g in groups]
    media = []
    for m in config.media:
        fid = pairs.get(m.mid, [])
        rtx = {r for _, r in fid}
        media.append(replace(m, remote_ssrcs=tuple(s for s in m.remote_ssrcs if s not in rtx),
                             remote_rtx_ssrcs=tuple(fid)))
    return replace(config, media=tuple(media))


def frames(packets: list[RtpPacket]) -> list[int]:
    """Frame numbers of the VP8-shaped packets that start a frame (after the descriptor and P byte)."""
    out = []
    for p in packets:
        payload = p.payload
        if payload and payload[0] & 0x10:
            _, pos = Vp8Descriptor.parse(payload)
            out.append(struct.unpack_from("!I", payload, pos + 1)[0])
    return out
