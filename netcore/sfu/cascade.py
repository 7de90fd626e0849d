"""Links between call servers (sans-IO): a room's tracks forwarded from one server to another.

A live broadcast is a tree of call servers: the origin has the room's
publishers; tier-2 servers and edges pull the room from the server above
them and forward it to their own viewers (and to the servers below them).
One **link** joins an upstream server U to a downstream server D for one
room.  :class:`CascadeCore` composes a :class:`~netcore.sfu.core.SfuCore`
and is driven in its place (same contract); the adapter owns the sockets
and the control channel.

Control (a WebSocket authenticated with the service secret; the adapter
carries these as JSON, this module decides)::

    D -> U  link.open    {room, server, path}      U: open_downlink (LoopRefused: link.refused)
    U -> D  link.opened  {link, tree, path, keys, tracks}   D: open_uplink
    U -> D  link.tracks  {tracks}                   D: uplink_tracks (TracksChanged on U)
    D -> U  link.pull / link.release {track}       (PullChanged on D)

Media is SRTP (RFC 3711, AES-128-GCM, RFC 7714) over UDP, keyed by U with
fresh random master keys per link, sent to D over the authenticated control
channel: servers need no ICE (their addresses are known and reachable, no
NAT between them) and no DTLS (the control channel already authenticates
both ends and is encrypted, so it can carry the keys, RFC 4568's approach
for a signalled key).  D sends its RTCP from the socket it receives on; U
takes the link's address from the first SRTCP packet that authenticates
with that link's key (its RR, every :data:`REPORT_INTERVAL`).

Rules, with their sources:

* Every layer and rendition of a pulled track goes once per link, as
  received (same SSRC and sequence numbers), whatever the number of
  viewers behind it; D's ordinary subscribers (and its own downlinks) take
  them from D's copy of the track, a :class:`RemotePublisher`'s publication
  with its simulcast layers, which D's allocators choose among.
* NACKs (RFC 4585 section 6.2.1) are answered at each hop from that hop's
  history: U keeps a :class:`~netcore.rtp.history.SendHistory` per SSRC per
  link and answers D's NACKs from it; D NACKs what the link lost
  (:class:`~netcore.jitter.nack.NackGenerator`, video), and D's subscribers'
  NACKs are answered by their own transports.  A retransmission is the
  packet again (no RTX between servers: the SRTP replay window drops a copy
  of what already arrived).
* PLI (RFC 4585 section 6.3.1) go through the track's
  :class:`~netcore.sfu.keyframes.KeyFrameArbiter` at every hop: D's viewers'
  requests make at most one PLI per key-frame interval per layer on the
  link, and U's arbiter merges the requests of all its links and viewers
  into at most one per interval to the publisher.
* A link never loops: each server's ``path`` for a room is the chain of
  server ids from the origin to it; U refuses a D already on its path, D
  refuses a path that holds itself.  ``tree`` names the broadcast (origin
  id and room).
* Pull on demand: D pulls a track while it has a connected viewer on it or
  a link of its own pulling it, and releases it :data:`LINGER` seconds
  after the last goes (a viewer switching pages does not restart the
  stream); a room whose last local participant and last downlink left is
  :class:`UplinkIdle` after the same linger.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import Callable

from netcore.demux import PacketKind
from netcore.errors import UsageError
from netcore.jitter.nack import NackConfig, NackGenerator
from netcore.net import Address, Receive, Transmit
from netcore.peer.events import RtcpReceived, RtpReceived
from netcore.rtp.errors import RtcpParseError, RtpParseError
from netcore.rtp.feedback import Nack, Pli
from netcore.rtp.packet import RtpPacket
from netcore.rtp.rtcp import ReceiverReport, SenderReport, parse_rtcp, serialize_rtcp
from netcore.rtp.sequence import SequenceUnwrapper
from netcore.sfu.events import ParticipantLeft, TrackPublished
from netcore.sfu.links import (LINK_RTT, SOURCE_RID, Downlink, LinkKeys, RemotePublisher, TrackDescription,
                               Uplink)
from netcore.sfu.participant import Layer, Publication

__all__ = ["CascadeCore", "CascadeEvent", "DownlinkSilent", "LoopRefused", "PullChanged", "TracksChanged", "UplinkIdle",
           "UplinkWanted", "LINGER", "REPORT_INTERVAL", "DEMAND_INTERVAL", "LINK_TIMEOUT",
           # the links' ends and wire types (netcore.sfu.links), for the callers of this module
           "Downlink", "LinkKeys", "RemotePublisher", "TrackDescription", "Uplink", "SOURCE_RID"]

LINGER = 3.0  # seconds a track (or a room's link) nobody watches stays pulled
DEMAND_INTERVAL = 0.1  # seconds between looks at what each room's viewers and links need
REPORT_INTERVAL = 0.5  # seconds between D's receiver reports on a link (its liveness and address)
LINK_TIMEOUT = 5.0  # seconds without an authentic report from D after which U stops a link (DownlinkSilent)


class LoopRefused(UsageError):
    """A link that would make the room's tree a loop (a server already on the path)."""


# -- events -----------------------------------------------------------------------------

@dataclass(frozen=True)
class PullChanged:
    """D starts (``pulled``) or stops needing ``track`` of the room's uplink: the adapter says link.pull /
    link.release."""

    room_id: str
    track: str
    pulled: bool


@dataclass(frozen=True)
class TracksChanged:
    """U's tracks of the room changed (a publisher, a track, a layer's SSRC): send link.tracks to its links."""

    room_id: str


@dataclass(frozen=True)
class UplinkWanted:
    """A room here has someone to forward to and no uplink: the adapter opens one if it knows an upstream."""

    room_id: str


@dataclass(frozen=True)
class UplinkIdle:
    """Nobody here has needed the room's uplink for LINGER: the adapter closes it."""

    room_id: str


@dataclass(frozen=True)
class DownlinkSilent:
    """D sent nothing authentic on the link for LINK_TIMEOUT (gone, or its path to U broke): U stopped
    sending on it; the adapter closes its control channel."""

    link_id: str
    room_id: str


CascadeEvent = PullChanged | TracksChanged | UplinkWanted | UplinkIdle | DownlinkSilent


# -- the core ---------------------------------------------------------------------------

class CascadeCore:
    """A call server core with links to other call servers (see the module docstring).

    ::

        cascade = CascadeCore(core, "edge-1", ("0.0.0.0", 41000))
        payload = cascade.open_downlink(room, downstream_id, path, now)   # U, on link.open
        cascade.pull(link_id, track, now); cascade.release(link_id, track, now); cascade.close_downlink(link_id, now)
        cascade.open_uplink(room, payload, local, upstream, now)          # D, on link.opened
        cascade.uplink_tracks(room, cascade_of_U.description(room), now); cascade.close_uplink(room, now)
        cascade.tracks(room) -> [TrackDescription]; cascade.path(room); cascade.tree(room)
        + the core contract: handle_datagram (by local address: a link's socket, else the core's),
          handle_timeout, poll_transmit, poll_event (CascadeEvent, then the core's), next_deadline
    """

    def __init__(self, core, server_id: str, address: Address,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        self.core, self.server_id, self.address, self.random = core, server_id, address, random
        core.relay = self
        self.downlinks: dict[str, Downlink] = {}
        self._by_address: dict[Address, Downlink] = {}
        self._room_downlinks: dict[str, list[Downlink]] = {}
        self.uplinks: dict[str, Uplink] = {}  # room id -> its uplink
        self._uplink_by_local: dict[Address, Uplink] = {}
        self._announced: dict[str, set[int]] = {}  # room -> SSRCs its links were told of
        self._idle_since: dict[str, float] = {}  # room -> since when nobody here needs its uplink
        self._wanted: set[str] = set()  # rooms an UplinkWanted was said for (until their uplink or idleness)
        self._out: deque[Transmit] = deque()
        self._events: deque[CascadeEvent] = deque()
        self._next_demand: float | None = None
        self._core_deadline: float | None = None
        self.link_drops: dict[str, int] = {}

    # -- paths (loop refusal) ---------------------------------------------------------

    def path(self, room_id: str) -> tuple[str, ...]:
        """The servers the room's media comes through to here, the origin first and this server last."""
        uplink = self.uplinks.get(room_id)
        return (uplink.path if uplink is not None else ()) + (self.server_id,)

    def tree(self, room_id: str) -> str:
        uplink = self.uplinks.get(room_id)
        return uplink.tree if uplink is not None else f"{self.server_id}/{room_id}"

    # -- the upstream end -------------------------------------------------------------

    def open_downlink(self, room_id: str, server: str, now: float) -> dict:
        """D (``server``) asks for the room: the ``link.opened`` payload (keys, path, tracks), or LoopRefused."""
        path = self.path(room_id)
        if server in path:
            raise LoopRefused(f"server {server!r} is already on the room's path {list(path)}")
        link_id = self.random(8).hex()
        keys = LinkKeys.generate(self.random)
        downlink = Downlink(link_id, room_id, server, keys, now)
        self.downlinks[link_id] = downlink
        self._room_downlinks.setdefault(room_id, []).append(downlink)
        self._arm_demand(now)
        return {"link": link_id, "keys": keys.to_wire(), **self.description(room_id)}

    def description(self, room_id: str) -> dict:
        """What the room's links are told (in ``link.opened`` and ``link.tracks``): the tree, the path to
        here and the tracks."""
        return {"room": room_id, "tree": self.tree(room_id), "path": list(self.path(room_id)),
                "tracks": [t.to_wire() for t in self.tracks(room_id)]}

    def close_downlink(self, link_id: str, now: float) -> None:
        downlink = self.downlinks.pop(link_id, None)
        if downlink is None:
            return
        if downlink.address is not None:
            self._by_address.pop(downlink.address, None)
        links = self._room_downlinks.get(downlink.room_id, [])
        if downlink in links:
            links.remove(downlink)
        if not links:
            self._room_downlinks.pop(downlink.room_id, None)
        self._arm_demand(now)

    def pull(self, link_id: str, track: str, now: float) -> None:
        """D pulls ``track``: forwarded from now on; a key frame of each layer is asked (through the
        arbiters) so that D's viewers can start."""
        downlink = self.downlinks.get(link_id)
        if downlink is None or track in downlink.pulled:
            return
        downlink.pulled.add(track)
        publication = self._publication(downlink.room_id, track)
        if publication is not None and publication.kind == "video":
            for layer in publication.layers:
                self.core.request_layer_keyframe(publication, layer, now, "link")
        self._arm_demand(now)

    def release(self, link_id: str, track: str, now: float) -> None:
        downlink = self.downlinks.get(link_id)
        if downlink is not None:
            downlink.pulled.discard(track)
        self._arm_demand(now)

    def tracks(self, room_id: str) -> list[TrackDescription]:
        """The room's tracks here (a transcoding worker's renditions are layers of their source)."""
        return [TrackDescription.of(publication)
                for participant in self.core.rooms.get(room_id, {}).values() if participant.transcodes is None
                for publication in participant.publications.values()]

    def announced(self, room_id: str) -> None:
        """The adapter told the room's links its tracks (link.opened or link.tracks)."""
        self._announced[room_id] = {ssrc for t in self.tracks(room_id) for _, ssrc in t.layers}

    def forward(self, publication: Publication, layer: Layer, packet: RtpPacket, now: float) -> None:
        """The core's hook: a packet of ``publication`` arrived here (after duplicates were dropped)."""
        room_id = publication.owner.room_id
        links = self._room_downlinks.get(room_id)
        if not links:
            return
        key = publication.key
        announced = self._announced.get(room_id)
        if announced is None or packet.ssrc not in announced:
            if announced is None:
                announced = self._announced[room_id] = set()
            announced.add(packet.ssrc)
            self._events.append(TracksChanged(room_id))  # a layer (or a restart) D does not know yet
        out = self._out
        for downlink in links:
            if key in downlink.pulled:
                transmit = downlink.send(packet, now)
                if transmit is not None:
                    transmit.source = self.address
                    out.append(transmit)

    def sender_reports(self, participant, packets: tuple, now: float) -> None:
        """The core's hook: a publisher's RTCP. Its SRs go down the links that pull its tracks, so that D's
        subscribers switching layers re-base timestamps as here (RFC 3550 section 6.4.1)."""
        links = self._room_downlinks.get(participant.room_id)
        if not links:
            return
        reports = [p for p in packets if isinstance(p, SenderReport)]
        for downlink in links:
            if downlink.address is None:
                continue
            mine = [r for r in reports if r.ssrc in downlink.histories]  # SSRCs it was sent
            if mine:
                data = downlink.srtp.protect_rtcp(serialize_rtcp(mine))
                self._out.append(Transmit(data, downlink.address, self.address))

    def _downlink_rtcp(self, datagram: Receive, now: float) -> None:
        source = datagram.source
        downlink = self._by_address.get(source) if source is not None else None
        plain = None
        if downlink is not None:
            plain = downlink.srtp.unprotect_rtcp(datagram.data)
        else:  # a new link's first report: its key says which
            for candidate in self.downlinks.values():
                if candidate.address is None and (plain := candidate.srtp.unprotect_rtcp(datagram.data)) is not None:
                    downlink = candidate
                    downlink.address = source
                    self._by_address[source] = downlink  # type: ignore[index]
                    break
        if downlink is None or plain is None:
            self._drop("unauthentic")
            return
        downlink.heard_at = now
        for packet in _rtcp(plain):
            if isinstance(packet, Nack):
                history = downlink.histories.get(packet.media_ssrc)
                if history is None:
                    continue
                downlink.stats.nacks += len(packet.lost)
                for repair in history.retransmit(packet.lost, now):
                    downlink.stats.retransmissions += 1
                    downlink.stats.bytes += len(repair.data)
                    downlink.stats.meter.add(len(repair.data), now)
                    self._out.append(Transmit(downlink.srtp.protect_rtp(repair.data), source, self.address))
            elif isinstance(packet, Pli):
                downlink.stats.plis += 1
                found = self._layer(downlink.room_id, packet.media_ssrc)
                if found is not None:
                    self.core.request_layer_keyframe(found[0], found[1], now, "link")

    def _publication(self, room_id: str, track: str) -> Publication | None:
        publisher, _, mid = track.rpartition("/")
        participant = self.core.rooms.get(room_id, {}).get(publisher)
        return participant.publications.get(mid) if participant is not None else None

    def _layer(self, room_id: str, ssrc: int) -> tuple[Publication, Layer] | None:
        for participant in self.core.rooms.get(room_id, {}).values():
            for publication in participant.publications.values():
                layer = publication.by_ssrc.get(ssrc)
                if layer is not None:
                    return publication, layer
        return None

    # -- the downstream end -----------------------------------------------------------

    def open_uplink(self, room_id: str, opened: dict, local: Address, upstream: Address, now: float) -> Uplink:
        """U's ``link.opened``: the uplink of the room, received on ``local`` from U's ``upstream`` address
        (LoopRefused if the path holds this server; ValueError/KeyError for a malformed payload)."""
        path = self._check_path(opened)
        if room_id in self.uplinks:
            self.close_uplink(room_id, now)
        rtcp_ssrc = int.from_bytes(self.random(4), "big") or 1
        uplink = Uplink(room_id, str(opened["link"]), LinkKeys.from_wire(opened["keys"]), local, upstream, path,
                        str(opened.get("tree", "")), rtcp_ssrc)
        self.uplinks[room_id] = uplink
        self._uplink_by_local[local] = uplink
        self._report(uplink, now)
        self.uplink_tracks(room_id, opened, now)
        if self._room_downlinks.get(room_id):
            self._events.append(TracksChanged(room_id))  # our path changed: the links below must know it
        self._arm_demand(now)
        return uplink

    def _check_path(self, description: dict) -> tuple[str, ...]:
        path = tuple(str(s) for s in _list(description, "path"))
        if self.server_id in path:
            raise LoopRefused(f"this server is already on the room's path {list(path)}")
        return path

    def close_uplink(self, room_id: str, now: float) -> None:
        """The room's uplink went (closed, idle, U gone): its publishers leave this server's room."""
        uplink = self.uplinks.pop(room_id, None)
        if uplink is None:
            return
        self._uplink_by_local.pop(uplink.local, None)
        self._wanted.discard(room_id)  # still needed: wanted again at the next look at the demand
        for publisher_id in list(uplink.publishers):
            self.core.leave(publisher_id, now, "upstream_gone")
        self._arm_demand(now)

    def uplink_lost(self, room_id: str, now: float) -> None:
        """The adapter could not open the room's uplink: if the room still needs one, UplinkWanted is said
        again at the next look at the demand (an uplink that broke is closed with close_uplink, which
        does the same)."""
        if room_id not in self.uplinks:
            self._wanted.discard(room_id)
            self._arm_demand(now)

    def uplink_tracks(self, room_id: str, description: dict, now: float) -> None:
        """U's ``link.tracks`` (its :meth:`description` of the room): publishers come and go, layers' SSRCs
        are learnt, the path is U's latest (LoopRefused, the uplink closed, if it holds this server)."""
        uplink = self.uplinks.get(room_id)
        if uplink is None:
            return
        tracks = [TrackDescription.from_wire(t) for t in _list(description, "tracks")]  # (ValueError first)
        try:
            path = self._check_path(description)
        except LoopRefused:
            self.close_uplink(room_id, now)
            raise
        if path != uplink.path:
            uplink.path, uplink.tree = path, str(description.get("tree", uplink.tree))
            if self._room_downlinks.get(room_id):
                self._events.append(TracksChanged(room_id))
        old = uplink.tracks
        uplink.tracks = {t.key: t for t in tracks}
        by_publisher: dict[str, list[TrackDescription]] = {}
        for track in tracks:
            by_publisher.setdefault(track.publisher, []).append(track)
        for publisher_id, publisher in list(uplink.publishers.items()):
            mine = by_publisher.get(publisher_id, [])
            if [_shape(t) for t in mine] != [_shape(old[t.key]) if t.key in old else None for t in mine] \
                    or len(mine) != len(publisher.publications):
                del uplink.publishers[publisher_id]  # gone, or its tracks changed shape: it leaves (and comes back)
                self.core.leave(publisher_id, now, "upstream_changed" if mine else "upstream_left")
        for publisher_id, mine in by_publisher.items():
            if publisher_id in uplink.publishers:
                continue
            publisher = RemotePublisher(publisher_id, room_id, uplink, now)
            for track in mine:
                publisher.publications[track.mid] = Publication(
                    publisher, track.mid, track.kind, dict(track.codecs), track.audio_level_id, track.rids)
            uplink.publishers[publisher_id] = publisher
            self.core.add_remote(publisher, now)
        uplink.by_ssrc = {ssrc: (uplink.publishers[t.publisher], t.mid, rid)
                          for t in tracks for rid, ssrc in t.layers}
        for ssrc in [s for s in uplink.nacks if s not in uplink.by_ssrc]:
            del uplink.nacks[ssrc]
        for track in [k for k in uplink.pulled if k not in uplink.tracks]:
            del uplink.pulled[track]
        self._arm_demand(now)

    def _uplink_rtp(self, uplink: Uplink, data: bytes, now: float) -> None:
        plain = uplink.srtp.unprotect_rtp(data)
        if plain is None:
            self._drop("unauthentic")
            return
        try:
            packet = RtpPacket.parse(plain)
        except RtpParseError:
            self._drop("malformed")
            return
        target = uplink.by_ssrc.get(packet.ssrc)
        if target is None:
            uplink.stats.dropped += 1  # a layer not announced yet (link.tracks is on its way)
            return
        publisher, mid, rid = target
        stats = uplink.stats
        stats.packets += 1
        stats.bytes += len(plain)
        stats.meter.add(len(plain), now)
        retransmitted = False
        publication = publisher.publications.get(mid)
        if publication is not None and publication.kind == "video":
            entry = uplink.nacks.get(packet.ssrc)
            if entry is None:
                entry = uplink.nacks[packet.ssrc] = (SequenceUnwrapper(), NackGenerator(NackConfig(), LINK_RTT))
            unwrap, nack = entry
            seq = unwrap.unwrap(packet.sequence_number)
            retransmitted = nack.highest is not None and seq < nack.highest
            nack.handle_packet(seq, now)
        publisher.transport.events.append(RtpReceived(mid, packet.ssrc, packet, retransmitted, rid))
        self.core.deliver(publisher, now)

    def _uplink_rtcp(self, uplink: Uplink, data: bytes, now: float) -> None:
        """U's RTCP: the publishers' SRs, handed to the remote publisher that has the SSRC."""
        plain = uplink.srtp.unprotect_rtcp(data)
        if plain is None:
            self._drop("unauthentic")
            return
        by_publisher: dict[str, list] = {}
        for packet in _rtcp(plain):
            target = uplink.by_ssrc.get(packet.ssrc) if isinstance(packet, SenderReport) else None
            if target is not None:
                by_publisher.setdefault(target[0].id, []).append(packet)
        for publisher_id, reports in by_publisher.items():
            publisher = uplink.publishers[publisher_id]
            publisher.transport.events.append(RtcpReceived(tuple(reports)))
            self.core.deliver(publisher, now)

    def _uplink_feedback(self, uplink: Uplink, now: float) -> None:
        """NACKs that are due, and PLIs the core asked for, to U."""
        for ssrc, (_, nack) in uplink.nacks.items():
            due = nack.next_deadline()
            if due is not None and due <= now:
                lost, _ = nack.poll(now)
                if lost:
                    uplink.stats.nacks += len(lost)
                    uplink.out.append(Nack(uplink.rtcp_ssrc, ssrc, [s & 0xFFFF for s in lost]).serialize())
        if now >= uplink.next_report:
            self._report(uplink, now)
        self._flush_uplink(uplink)

    def _report(self, uplink: Uplink, now: float) -> None:
        uplink.out.append(ReceiverReport(uplink.rtcp_ssrc).serialize())
        uplink.next_report = now + REPORT_INTERVAL

    def _flush_uplink(self, uplink: Uplink) -> None:
        while uplink.out:
            data = uplink.srtp.protect_rtcp(uplink.out.popleft())
            self._out.append(Transmit(data, uplink.upstream, uplink.local))

    # -- demand (pull on demand, linger) ----------------------------------------------

    def _arm_demand(self, now: float) -> None:
        if self._next_demand is None or self._next_demand > now + DEMAND_INTERVAL:
            self._next_demand = now + DEMAND_INTERVAL

    def _demand(self, now: float) -> None:
        """Pull what viewers and links here need, release what nobody needed for LINGER; rooms that want
        or no longer need an uplink; links whose D went silent."""
        core = self.core
        for downlink in list(self.downlinks.values()):
            if now - downlink.heard_at >= LINK_TIMEOUT:
                self.close_downlink(downlink.link_id, now)
                self._events.append(DownlinkSilent(downlink.link_id, downlink.room_id))
        for room_id, uplink in self.uplinks.items():
            for key in uplink.tracks:
                publisher, _, mid = key.rpartition("/")
                remote = uplink.publishers.get(publisher)
                publication = remote.publications.get(mid) if remote is not None else None
                wanted = publication is not None and (
                    any(slot.owner.connected for slot in publication.slots)
                    or any(key in d.pulled for d in self._room_downlinks.get(room_id, ())))
                since = uplink.pulled.get(key, "absent")
                if wanted:
                    if since == "absent":
                        self._events.append(PullChanged(room_id, key, True))
                    uplink.pulled[key] = None
                elif since is None:
                    uplink.pulled[key] = now
                elif since != "absent" and now - since >= LINGER:  # type: ignore[operator]
                    del uplink.pulled[key]
                    self._events.append(PullChanged(room_id, key, False))
        rooms = set(core.rooms) | set(self._room_downlinks) | set(self.uplinks)
        for room_id in rooms:
            uplink = self.uplinks.get(room_id)
            remote = uplink.publishers if uplink is not None else {}
            local = [p for p in core.rooms.get(room_id, {}) if p not in remote]
            needed = bool(local) or bool(self._room_downlinks.get(room_id))
            if needed:
                self._idle_since.pop(room_id, None)
                if uplink is None and room_id not in self._wanted and not self._publishes(room_id):
                    self._wanted.add(room_id)
                    self._events.append(UplinkWanted(room_id))
            elif uplink is not None or room_id in self._wanted:
                since = self._idle_since.setdefault(room_id, now)
                if now - since >= LINGER:
                    del self._idle_since[room_id]
                    self._wanted.discard(room_id)
                    self._events.append(UplinkIdle(room_id))

    def _publishes(self, room_id: str) -> bool:
        """Someone publishes in the room here: it is the origin of its tree."""
        return any(p.publications and not isinstance(p, RemotePublisher)
                   for p in self.core.rooms.get(room_id, {}).values())

    def _watched(self) -> bool:
        return bool(self.uplinks or self.downlinks or self._wanted or self._idle_since)

    # -- the contract -----------------------------------------------------------------

    def handle_datagram(self, datagram: Receive, now: float) -> None:
        destination = datagram.destination
        uplink = self._uplink_by_local.get(destination) if destination is not None else None
        if uplink is not None:
            if datagram.kind is PacketKind.RTP:
                self._uplink_rtp(uplink, datagram.data, now)
            elif datagram.kind is PacketKind.RTCP:
                self._uplink_rtcp(uplink, datagram.data, now)
            else:
                self._drop("not_rtp")
            self._flush_uplink(uplink)
        elif destination == self.address:
            self._downlink_rtcp(datagram, now)
        else:
            self.core.handle_datagram(datagram, now)

    def handle_timeout(self, now: float) -> None:
        core_due = self._core_deadline
        if core_due is None or core_due <= now:  # (the core's own timeout walks every participant)
            self.core.handle_timeout(now)
        for uplink in self.uplinks.values():
            self._uplink_feedback(uplink, now)
        if self._next_demand is not None and now >= self._next_demand:
            self._next_demand = now + DEMAND_INTERVAL if self._watched() or self.core.rooms else None
            self._demand(now)

    def poll_transmit(self) -> Transmit | None:
        transmit = self.core.poll_transmit()
        if transmit is not None:
            return transmit
        for uplink in self.uplinks.values():
            if uplink.out:
                self._flush_uplink(uplink)
        return self._out.popleft() if self._out else None

    def poll_event(self):
        if self._events:
            return self._events.popleft()
        event = self.core.poll_event()
        if event is None:
            return None
        if self._next_demand is None:
            self._next_demand = 0.0  # rooms changed: look at the demand at the next timeout
        if isinstance(event, (TrackPublished, ParticipantLeft)) and self._room_downlinks.get(event.room_id):
            self._events.append(TracksChanged(event.room_id))  # the links' D must know
        return event

    def next_deadline(self) -> float | None:
        self._core_deadline = self.core.next_deadline()  # (every input ends with this call: fresh at a timeout)
        deadlines = [d for d in (self._core_deadline, self._next_demand) if d is not None]
        for uplink in self.uplinks.values():
            deadlines.append(uplink.next_report)
            for _, nack in uplink.nacks.values():
                due = nack.next_deadline()
                if due is not None:
                    deadlines.append(due)
        return min(deadlines) if deadlines else None

    def _drop(self, reason: str) -> None:
        self.link_drops[reason] = self.link_drops.get(reason, 0) + 1


def _shape(track: TrackDescription) -> tuple:
    """What a remote publication is made of (its layers' SSRCs aside, which are learnt as they come)."""
    return track.mid, track.kind, track.codecs, track.audio_level_id, track.rids


def _list(description: dict, key: str) -> list:
    """A list field of a control message (ValueError when it is not one)."""
    value = description.get(key, []) if isinstance(description, dict) else None
    if not isinstance(value, list):
        raise ValueError(f"{key} is not a list")
    return value


def _rtcp(plain: bytes) -> list:
    try:
        return parse_rtcp(plain)
    except RtcpParseError as exc:
        return list(exc.packets)

