"""The two ends of one link between call servers and what crosses it (netcore.sfu.cascade decides).

* :class:`LinkKeys` and :class:`TrackDescription`: what the control
  channel carries (the SRTP master keys of both directions; each track's
  publisher, section, codecs and layers), with their JSON-ready forms;
* :class:`Downlink`: the upstream's end (what the downstream pulls, a
  :class:`~netcore.rtp.history.SendHistory` per SSRC for its NACKs, its
  address once an SRTCP packet authenticated);
* :class:`Uplink`: the downstream's end (the upstream's tracks, a NACK
  schedule per video SSRC, what it pulls), and the participant-shaped
  :class:`RemotePublisher` with its :class:`RemoteTransport` through which
  the downstream's core sees the upstream's publishers.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import Callable

from netcore.jitter.nack import NackGenerator
from netcore.net import Address, Transmit
from netcore.peer.transport import TransportState, TransportStats
from netcore.rtp.feedback import Pli
from netcore.rtp.history import SendHistory
from netcore.rtp.packet import RtpPacket
from netcore.rtp.sequence import SequenceUnwrapper
from netcore.sfu.allocator import BitrateMeter
from netcore.sfu.participant import Layer, Publication
from netcore.srtp.profiles import PROFILES, SrtpProfile
from netcore.srtp.session import SrtpSession

__all__ = ["Downlink", "LinkKeys", "LinkStats", "RemotePublisher", "RemoteTransport", "TrackDescription", "Uplink",
           "LINK_HISTORY", "LINK_RTT", "PROFILE", "SOURCE_RID"]

LINK_HISTORY = 2048  # packets per SSRC per link kept for NACKs (about 2 s of a 5 Mbit/s layer)
LINK_RTT = 0.05  # seconds: the NACK schedule's round trip between servers (one region or near ones)
PROFILE = SrtpProfile.SRTP_AEAD_AES_128_GCM
SOURCE_RID = "~"  # the name of a publication's own stream among its renditions, on a link



@dataclass(frozen=True)
class LinkKeys:
    """The two SRTP master key||salt of one link: U -> D (``upstream``) and D -> U (``downstream``)."""

    upstream: bytes
    downstream: bytes
    profile: int = PROFILE

    @classmethod
    def generate(cls, random: Callable[[int], bytes] = os.urandom) -> LinkKeys:
        params = PROFILES[PROFILE]
        size = params.key_length + params.salt_length
        return cls(random(size), random(size))

    def to_wire(self) -> dict:
        return {"profile": int(self.profile), "upstream": self.upstream.hex(), "downstream": self.downstream.hex()}

    @classmethod
    def from_wire(cls, data: dict) -> LinkKeys:
        """The keys, or ValueError for anything malformed."""
        try:
            return cls(bytes.fromhex(data["upstream"]), bytes.fromhex(data["downstream"]), int(data["profile"]))
        except (AttributeError, KeyError, TypeError) as exc:
            raise ValueError(f"malformed link keys: {exc}") from None


@dataclass(frozen=True)
class TrackDescription:
    """What D needs to forward one of U's tracks: who, which section, codecs, layers (rid, SSRC)."""

    publisher: str
    mid: str
    kind: str
    codecs: tuple[tuple[int, str], ...]
    audio_level_id: int | None = None
    rids: tuple[str, ...] = ()  # its layers' names when it has several (SOURCE_RID for the publisher's own)
    layers: tuple[tuple[str | None, int], ...] = ()  # (rid, SSRC) of each layer that has sent

    @property
    def key(self) -> str:
        return f"{self.publisher}/{self.mid}"

    @classmethod
    def of(cls, publication: Publication) -> TrackDescription:
        names = [_layer_name(la) for la in publication.layers]
        return cls(publication.owner.id, publication.mid, publication.kind,
                   tuple(sorted(publication.codecs.items())), publication.audio_level_id,
                   tuple(names) if publication.simulcast else (),
                   tuple((name if publication.simulcast else None, la.ssrc)
                         for name, la in zip(names, publication.layers) if la.ssrc is not None))

    def to_wire(self) -> dict:
        return {"publisher": self.publisher, "mid": self.mid, "kind": self.kind,
                "codecs": [[pt, name] for pt, name in self.codecs], "audio_level_id": self.audio_level_id,
                "rids": list(self.rids), "layers": [[rid, ssrc] for rid, ssrc in self.layers]}

    @classmethod
    def from_wire(cls, data: dict) -> TrackDescription:
        """The description, or ValueError for anything malformed (the upstream's word is not trusted)."""
        try:
            if data.get("kind") not in ("audio", "video"):
                raise ValueError("a track is audio or video")
            level = data.get("audio_level_id")
            return cls(str(data["publisher"]), str(data["mid"]), data["kind"],
                       tuple((int(pt), str(name).upper()) for pt, name in data["codecs"]),
                       int(level) if level is not None else None, tuple(str(r) for r in data.get("rids", ())),
                       tuple((str(r) if r is not None else None, int(s) & 0xFFFFFFFF)
                             for r, s in data.get("layers", ())))
        except (AttributeError, KeyError, TypeError) as exc:
            raise ValueError(f"a malformed track description: {exc}") from None


def _layer_name(layer: Layer) -> str:
    return layer.rid if layer.rid is not None else SOURCE_RID


# -- the upstream end -----------------------------------------------------------------

class LinkStats:
    """What one link carried (the daemon's Prometheus metrics read them)."""

    __slots__ = ("packets", "bytes", "retransmissions", "nacks", "plis", "dropped", "meter")

    def __init__(self) -> None:
        self.packets = self.bytes = self.retransmissions = self.nacks = self.plis = self.dropped = 0
        self.meter = BitrateMeter()  # the media bitrate on the link (its measured bandwidth)


class Downlink:
    """U's end of a link: what D pulls, the histories that answer its NACKs, where to send."""

    def __init__(self, link_id: str, room_id: str, server: str, keys: LinkKeys, now: float) -> None:
        self.link_id, self.room_id, self.server = link_id, room_id, server
        self.srtp = SrtpSession(keys.profile, keys.upstream, keys.downstream, replay_window=LINK_HISTORY)
        self.address: Address | None = None  # latched from D's first authentic SRTCP
        self.pulled: set[str] = set()  # track keys
        self.histories: dict[int, SendHistory] = {}
        self.stats = LinkStats()
        self.opened_at = self.heard_at = now

    def send(self, packet: RtpPacket, now: float) -> Transmit | None:
        """``packet`` for the link (kept for NACKs); None before D's address is known."""
        history = self.histories.get(packet.ssrc)
        if history is None:
            history = self.histories[packet.ssrc] = SendHistory(LINK_HISTORY, min_interval=LINK_RTT / 2)
        history.add(packet)
        if self.address is None:
            self.stats.dropped += 1
            return None
        stats = self.stats
        stats.packets += 1
        stats.bytes += len(packet.data)
        stats.meter.add(len(packet.data), now)
        return Transmit(self.srtp.protect_rtp(packet.data), self.address)


# -- the downstream end ---------------------------------------------------------------

class RemoteTransport:
    """What the call server core sees as a remote publisher's transport: the uplink's packets for it as
    ``RtpReceived`` events, its key frame requests as PLIs on the link. Nothing to negotiate or time."""

    state = TransportState.NEW  # never CONNECTED: the core sends it no REMB (the link is not paced)
    target_bitrate = 0.0

    class _Sender:
        retransmissions = 0

    def __init__(self, uplink: Uplink) -> None:
        self.uplink = uplink
        self.events: deque = deque()
        self.stats = TransportStats()
        self.sender = self._Sender()

    def request_keyframe(self, ssrc: int, now: float, *, fir: bool = False) -> None:
        self.stats.plis_sent += 1
        self.uplink.request_keyframe(ssrc)

    def send_feedback(self, packets: list, now: float) -> None:
        pass

    def handle_timeout(self, now: float) -> None:
        pass

    def next_deadline(self) -> None:
        return None

    def poll_event(self):
        return self.events.popleft() if self.events else None

    def poll_transmit(self) -> None:
        return None  # the uplink's datagrams leave through CascadeCore.poll_transmit

    def close(self, now: float) -> None:
        self.events.clear()


class RemotePublisher:
    """A publisher of U's room as D's core sees it: a participant with publications and no slots."""

    def __init__(self, participant_id: str, room_id: str, uplink: Uplink, now: float) -> None:
        self.id, self.room_id, self.joined_at = participant_id, room_id, now
        self.transport = RemoteTransport(uplink)
        self.publications: dict[str, Publication] = {}
        self.slots: list = []
        self.slot_by_ssrc: dict = {}
        self.connected = True
        self.transcodes = None
        self.job = None
        self.packets_received = self.layer_switches = 0
        self.next_probe, self.probe_interval = float("inf"), 1.0
        self.max_heights: dict = {}
        self.max_fps: dict = {}
        self.packets_forwarded = self.bytes_forwarded = 0

    def free_slot(self, kind: str) -> None:
        return None


class Uplink:
    """D's end of a link: U's tracks of the room, the NACK schedule per SSRC, what D pulls."""

    def __init__(self, room_id: str, link_id: str, keys: LinkKeys, local: Address, upstream: Address,
                 path: tuple[str, ...], tree: str, rtcp_ssrc: int) -> None:
        self.room_id, self.link_id, self.local, self.upstream = room_id, link_id, local, upstream
        self.path, self.tree, self.rtcp_ssrc = path, tree, rtcp_ssrc
        self.srtp = SrtpSession(keys.profile, keys.downstream, keys.upstream, replay_window=LINK_HISTORY)
        self.tracks: dict[str, TrackDescription] = {}
        self.publishers: dict[str, RemotePublisher] = {}
        self.by_ssrc: dict[int, tuple[RemotePublisher, str, str | None]] = {}  # -> (publisher, mid, rid)
        self.nacks: dict[int, tuple[SequenceUnwrapper, NackGenerator]] = {}
        self.pulled: dict[str, float | None] = {}  # track key -> when its last viewer left (None: watched)
        self.stats = LinkStats()
        self.out: deque[bytes] = deque()  # plain RTCP packets to protect and send
        self.next_report = 0.0

    def request_keyframe(self, ssrc: int) -> None:
        self.stats.plis += 1
        self.out.append(Pli(self.rtcp_ssrc, ssrc).serialize())
