"""A participant of the call server: its transport, what it publishes, and its receive slots.

The client's offer says both (RFC 3264 directions, from the client's side):

* a section the client sends on (``sendonly``/``sendrecv``) is a
  **publication**: the server answers it ``recvonly`` and forwards what
  arrives on it;
* a ``recvonly`` section is a **slot**: the server answers it ``sendonly``
  with an SSRC of its own (and an RTX SSRC for video), and puts another
  participant's track of the same kind into it.  What each slot carries is
  told to the client in :class:`~netcore.sfu.events.SlotsChanged` (over
  signaling), so no renegotiation is needed when participants come and go:
  a client offers as many slots as it wants to show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netcore.peer.config import config_from_negotiated
from netcore.peer.transport import MediaTransport
from netcore.rtp.extensions import URI_AUDIO_LEVEL
from netcore.sdp.jsep import Negotiator
from netcore.sdp.model import MediaIntent, NegotiatedSession
from netcore.sdp.wire import parse
from netcore.sfu.allocator import (LAYER_TIMEOUT, PAUSED_FRAMES, PROBE_INTERVAL, BitrateMeter, LayerAllocator,
                                   LayerInfo)
from netcore.sfu.changes import changed
from netcore.sfu.keyframes import KeyFrameArbiter
from netcore.sfu.rewrite import DownTrack, ReceivedWindow

__all__ = ["Layer", "Participant", "Publication", "SlotState", "plan_intents"]


@dataclass(eq=False)
class Layer:
    """One simulcast stream of a publication (RFC 8853; its RID, RFC 8851), or the one stream without.

    ``sender_report``: (NTP seconds, RTP timestamp) of its latest RTCP SR
    (RFC 3550 section 6.4.1), which puts the layers' timestamps on one clock.
    """

    rid: str | None
    ssrc: int | None = None  # learnt from its first packet; a publisher restart changes it
    arbiter: KeyFrameArbiter = field(default_factory=KeyFrameArbiter)
    meter: BitrateMeter = field(default_factory=BitrateMeter)
    height: int = 0  # from its latest key frame (VP8), 0 unknown
    sender_report: tuple[float, int] | None = None
    received: ReceivedWindow = field(default_factory=ReceivedWindow)  # duplicates are not forwarded
    temporal: list[BitrateMeter] = field(default_factory=list)  # per VP8 TID seen, 0 first (temporal layers)
    # frames per TID (a meter counting 1 per frame's last packet: its figure / 8 is frames/s)
    temporal_frames: list[BitrateMeter] = field(default_factory=list)
    owner: Participant | None = None  # a transcoding worker's rendition (None: the publisher's own stream)
    codec: str | None = None  # of its latest packet (upper case), None before the first
    timestamp: int | None = None  # the RTP timestamp of its latest frame
    mark: int = 0  # its publication's ``frame_starts`` at its latest packet
    keyframe_timestamp: int | None = None  # the RTP timestamp of its latest key frame ...
    keyframe_bytes: int = 0  # ... and the bytes of its packets received so far (what a switch to it waits for)

    @property
    def rendition(self) -> bool:
        return self.owner is not None

    def temporal_meter(self, tid: int) -> BitrateMeter:
        """The meter of TID ``tid`` (0-3), made with those below it on first sight."""
        return _nth(self.temporal, tid)

    def temporal_frame(self, tid: int, now: float) -> None:
        """A frame of TID ``tid`` ended (its packet with the marker bit)."""
        _nth(self.temporal_frames, tid).add(1, now)

    def temporal_rates(self, now: float) -> tuple[float, ...]:
        """What TIDs 0..t take together, for each t (() with fewer than two TIDs seen)."""
        return _cumulative(self.temporal, now, 1.0)

    def frame_rates(self, now: float) -> tuple[float, ...]:
        """The frames per second of TIDs 0..t together, for each t (() with fewer than two TIDs seen)."""
        return _cumulative(self.temporal_frames, now, 1 / 8)


def _nth(meters: list[BitrateMeter], tid: int) -> BitrateMeter:
    """Meter ``tid`` of a per-TID list, made with those below it on first sight."""
    while len(meters) <= tid:
        meters.append(BitrateMeter())
    return meters[tid]


def _cumulative(meters: list[BitrateMeter], now: float, scale: float) -> tuple[float, ...]:
    """The meters' figures (times ``scale``) summed from TID 0 up, for each TID (() below two TIDs)."""
    if len(meters) < 2:
        return ()
    rates, total = [], 0.0
    for meter in meters:
        total += meter.current(now) * scale
        rates.append(total)
    return tuple(rates)


@dataclass(eq=False)
class Publication:
    """A track a participant sends: one m-section, its layers (one without simulcast), its subscribers."""

    owner: Participant
    mid: str
    kind: str
    codecs: dict[int, str]  # payload type -> encoding name (upper case)
    audio_level_id: int | None = None
    rids: tuple[str, ...] = ()  # simulcast streams negotiated (a=rid ... recv in our answer)
    layers: list[Layer] = field(default_factory=list)
    slots: list[SlotState] = field(default_factory=list)  # where it is forwarded
    packets: int = 0
    bytes: int = 0
    frame_starts: int = 0  # frames started on any of its layers (a packet with a newer RTP timestamp)

    def __post_init__(self) -> None:
        self.layers = [Layer(rid) for rid in self.rids] or [Layer(None)]
        self.by_ssrc: dict[int, Layer] = {}

    @property
    def key(self) -> str:
        return f"{self.owner.id}/{self.mid}"

    @property
    def arbiter(self) -> KeyFrameArbiter:
        """The key-frame arbiter of the single stream (the first layer's with simulcast)."""
        return self.layers[0].arbiter

    @property
    def simulcast(self) -> bool:
        """Its subscribers choose among layers: the publisher's RID streams, or renditions made of it."""
        return bool(self.rids) or len(self.layers) > 1

    @property
    def source_codec(self) -> str | None:
        """The codec the publisher sends (of its own streams' latest packets), None before any."""
        return next((la.codec for la in self.layers if la.owner is None and la.codec), None)

    def own_bitrates(self, now: float) -> list[float]:
        """The bitrate of each of the publisher's own streams (renditions left out)."""
        return [la.meter.current(now) for la in self.layers if la.owner is None]

    @property
    def has_temporal_layers(self) -> bool:
        """Some layer's frames carry two or more VP8 TIDs: subscribers are given a TID as well."""
        return any(len(la.temporal) > 1 for la in self.layers)

    @property
    def source(self) -> int | None:
        """The SSRC of the single stream (without simulcast), or of the first layer seen."""
        return self.layers[0].ssrc if not self.rids else next((la.ssrc for la in self.layers if la.ssrc), None)

    def note_packet(self, layer: Layer, timestamp: int) -> bool:
        """A packet of ``layer`` (with simulcast): True when it starts a newer frame of that layer."""
        last = layer.timestamp
        started = last is None or 0 < (timestamp - last) & 0xFFFFFFFF < 0x80000000  # not older (RTX, reordered)
        if started:
            layer.timestamp = timestamp
            if layer.owner is None:  # a rendition comes in bursts as its worker's CPU allows: not counted
                self.frame_starts += 1
        layer.mark = self.frame_starts
        return started

    def paused(self, layer: Layer, now: float) -> bool:
        """The publisher stopped ``layer`` while others go on: since its latest packet, each of its other
        active layers started PAUSED_FRAMES frames (on average; netcore.sfu.allocator). Counted from its
        latest packet, not frame, so a layer that merely lags (a large picture takes longer) is no pause.

        A worker's rendition comes in bursts (and skips frames to stay real time), which is no pause: it
        counts as paused after LAYER_TIMEOUT without a packet, while the track's newest packet is newer."""
        if layer.owner is not None:
            newest = max(la.meter.last_packet for la in self.layers)
            return newest - layer.meter.last_packet >= LAYER_TIMEOUT
        others = sum(1 for la in self.layers if la is not layer and la.owner is None and la.meter.active(now))
        return self.frame_starts - layer.mark >= PAUSED_FRAMES * max(1, others)

    def sending(self, now: float) -> bool:
        """A packet of some layer within LAYER_TIMEOUT: its subscribers' slots receive media."""
        return any(la.meter.active(now) for la in self.layers)

    def layer(self, ssrc: int, rid: str | None) -> Layer | None:
        """The layer of a packet, bound by its RID on first sight (None: a RID we did not negotiate)."""
        layer = self.by_ssrc.get(ssrc)
        if layer is not None:
            return layer
        if not self.rids:
            layer = self.layers[0]  # the first packet, or the publisher restarted its stream
        else:
            layer = next((la for la in self.layers if la.rid == rid), None)
            if layer is None:
                return None
        if layer.ssrc is not None:
            self.by_ssrc.pop(layer.ssrc, None)
        layer.ssrc = ssrc
        self.by_ssrc[ssrc] = layer
        return layer

    def ordered(self, codecs: dict[str, int] | None = None, own_only: bool = False) -> list[Layer]:
        """Its layers lowest first: by key-frame height when every layer has one, else as negotiated
        (rid order, the publisher's ``sendEncodings`` order).

        ``codecs``: what a subscriber decodes.  A subscriber that decodes
        the source's codec is offered the publisher's streams and the
        renditions in that codec whose size is known (from a key frame); one
        that does not is offered the renditions in a codec it decodes (the
        codec alternatives made for it).  ``own_only``: the publisher's
        streams alone (what a transcoding worker subscribes to).
        """
        layers = [la for la in self.layers if la.ssrc is not None]
        if own_only:
            layers = [la for la in layers if la.owner is None]
        elif codecs is not None and any(la.owner is not None for la in self.layers):
            source = self.source_codec
            if source is None or source in codecs:
                layers = [la for la in layers if la.owner is None or (la.codec == source and la.height)]
            else:
                layers = [la for la in layers if la.owner is not None and la.codec in codecs]
        if layers and all(la.height for la in layers):
            layers.sort(key=lambda la: la.height)
        return layers

    def layer_infos(self, layers: list[Layer], now: float) -> list[LayerInfo]:
        return [LayerInfo(la.meter.current(now), la.height, la.meter.active(now) and not self.paused(la, now),
                          la.temporal_rates(now), la.frame_rates(now), la.keyframe_bytes * 8) for la in layers]


@dataclass(eq=False)
class SlotState:
    """One receive section of a subscriber and the stream rewritten into it."""

    owner: Participant
    mid: str
    kind: str
    downtrack: DownTrack
    codecs: dict[str, int]  # encoding name -> the subscriber's payload type
    publication: Publication | None = None
    allocator: LayerAllocator = field(default_factory=LayerAllocator)  # its simulcast layer
    layer: Layer | None = None  # the layer it forwards or switches to
    job: object | None = None  # the transcoding job it needs (netcore.transcode.planner.Job), None: none
    short_since: float | None = None  # when its budget fell below the publisher's only layer (None: it is not)

    def attach(self, publication: Publication | None) -> None:
        changed()  # the publications' slots change (netcore.sfu.changes)
        if self.publication is not None and self in self.publication.slots:
            self.publication.slots.remove(self)
        if publication is not self.publication:
            self.allocator, self.layer, self.short_since = LayerAllocator(), None, None
        self.publication = publication
        if publication is not None:
            publication.slots.append(self)
            self.downtrack.attach(self.payload_types(publication), publication.codecs)

    def payload_types(self, publication: Publication) -> dict[int, int]:
        """The publication's payload types mapped onto ours, for the codecs we both have."""
        return {pt: self.codecs[name] for pt, name in publication.codecs.items() if name in self.codecs}


def plan_intents(offer: str, new_ssrc) -> list[MediaIntent]:
    """Our answer's intent for each offered audio/video section, in order (see the module docstring)."""
    intents = []
    for section in parse(offer).media:
        if section.kind not in ("audio", "video"):
            continue
        direction = section.direction or "sendrecv"
        if direction in ("sendrecv", "sendonly"):
            intents.append(MediaIntent(section.kind, direction="recvonly"))
        elif direction == "recvonly":
            rtx = new_ssrc() if section.kind == "video" else None
            intents.append(MediaIntent(section.kind, direction="sendonly", ssrc=new_ssrc(), rtx_ssrc=rtx))
        else:
            intents.append(MediaIntent(section.kind, direction="inactive"))
    return intents


class Participant:
    """One client of one room: a :class:`MediaTransport` (ICE-lite) with its publications and slots."""

    def __init__(self, participant_id: str, room_id: str, negotiator: Negotiator, session: NegotiatedSession,
                 intents: list[MediaIntent], transport_options: dict, certificate, now: float) -> None:
        self.id = participant_id
        self.room_id = room_id
        self.negotiator = negotiator
        self.session = session
        self.joined_at = now
        self.publications: dict[str, Publication] = {}
        self.slots: list[SlotState] = []
        self.slot_by_ssrc: dict[int, SlotState] = {}
        send_ssrcs: dict[str, tuple[int, int | None]] = {}
        live = [m for m in session.media if m.kind in ("audio", "video")]
        for media, intent in zip(live, intents):
            if media.rejected or media.mid is None:
                continue
            if intent.direction == "sendonly" and media.send and intent.ssrc is not None:
                send_ssrcs[media.mid] = (intent.ssrc, intent.rtx_ssrc)
        config = config_from_negotiated(session, certificate, send_ssrcs=send_ssrcs, ice_lite=True,
                                        **transport_options)
        self.transport = MediaTransport(config)
        for media in config.media:
            if media.send_ssrc is not None:
                self._add_slot(media, config)
            else:
                codecs = {c.payload_type: c.name.upper() for c in media.codecs}
                self.publications[media.mid] = Publication(self, media.mid, media.kind, codecs,
                                                           config.extension_id(URI_AUDIO_LEVEL),
                                                           media.rids if media.kind == "video" else ())
        self.connected = False
        self.transcodes: Publication | None = None  # a transcoding worker: the track it makes renditions of
        self.job: str | None = None  # and the job it runs
        self.packets_received = 0
        self.layer_switches = 0  # simulcast layer changes decided for its slots
        self.next_probe = 0.0  # when its link may be probed for a higher layer next
        self.probe_interval = PROBE_INTERVAL
        # (publisher id, mid) -> the largest picture height it wants of that track (signaling asks)
        self.max_heights: dict[tuple[str, str], int] = {}
        # ... and the highest frame rate (VP8 temporal layers: the TIDs whose frames come no faster)
        self.max_fps: dict[tuple[str, str], float] = {}

    def _add_slot(self, media, config) -> None:
        assert media.send_ssrc is not None
        downtrack = DownTrack(media.send_ssrc, media.kind, media.clock_rate,
                              config.extension_id(URI_AUDIO_LEVEL) if media.kind == "audio" else None)
        codecs = {c.name.upper(): c.payload_type for c in media.codecs}
        slot = SlotState(self, media.mid, media.kind, downtrack, codecs)
        self.slots.append(slot)
        self.slot_by_ssrc[media.send_ssrc] = slot

    def free_slot(self, kind: str) -> SlotState | None:
        for slot in self.slots:
            if slot.kind == kind and slot.publication is None:
                return slot
        return None

    @property
    def packets_forwarded(self) -> int:
        return sum(s.downtrack.packets + (s.downtrack.fast.track.packets if s.downtrack.fast else 0)
                   for s in self.slots)

    @property
    def bytes_forwarded(self) -> int:
        return sum(s.downtrack.bytes + (s.downtrack.fast.track.bytes if s.downtrack.fast else 0)
                   for s in self.slots)
