"""The call server core (sans-IO): rooms of participants on one UDP port, forwarding between them.

::

    core = SfuCore(SfuConfig(certificate, local_addresses=[("0.0.0.0", 40000)],
                             public_addresses=[("203.0.113.7", 40000)]))
    answer, slots = core.join(room_id, participant_id, offer_sdp, now)   # SDP answer, what each slot carries
    core.leave(participant_id, now)
    core.handle_datagram(Receive(data, source, local_address), now)
    core.handle_timeout(now)
    core.poll_transmit() -> Transmit       # source = the local address to send from
    core.poll_event()    -> SfuEvent       # joined, left, slots changed, active speaker
    core.next_deadline()

Each participant has its own :class:`~netcore.peer.transport.MediaTransport`
(ICE-lite, DTLS server, SRTP, RTCP, TWCC, NACK/RTX); the core routes each
datagram of the shared port to one of them (:class:`PortRouter`), takes
their ``RtpReceived`` events and forwards each packet to every slot that
carries its track, rewritten per subscriber (:class:`DownTrack`), through
the subscriber's transport (``send_rtp``: its pacer, its send history,
which answers that subscriber's NACKs, RTX-wrapped when negotiated).

Rules, with their sources:

* NACKs (RFC 4585 section 6.2.1) are answered by each subscriber's own
  transport from its history of what it sent; a packet lost upstream is
  NACKed upstream by the publisher's transport (its receiver's loss
  tracking) and forwarded to every subscriber when it arrives, filling the
  same gap in each of their sequences.
* PLI/FIR (RFC 4585 section 6.3.1, RFC 5104 section 4.3.1) from a
  subscriber go through the track's :class:`KeyFrameArbiter`: at most one
  upstream per ``KEYFRAME_INTERVAL``.  A subscriber's slot switched to a
  new source asks the same way, and a connecting subscriber asks for every
  track it is given.
* Audio is forwarded as is (with its RFC 6464 level when the subscriber
  agreed it); the levels drive :class:`SpeakerDetector`.
* Last-N (``SfuConfig.last_n``, or per room :meth:`SfuCore.set_last_n`):
  each subscriber is sent the video of at most N other participants,
  the N who were the active speaker most recently (those who never were
  after them, in join order); audio always.  The video slots of the
  others are paused (nothing forwarded, numbers closed up), and a slot
  whose publisher comes back into the N is resumed from a key frame asked
  for at once.
* Publishers get transport-wide feedback from their transport, and a REMB
  every ``REMB_INTERVAL`` bounded by what their subscribers can take (the
  highest of their estimates, shared among their video slots; not bounded
  for a simulcast publisher, whose layers the subscribers choose from).
* Simulcast (RFC 8853): a publication's layers are its RID streams; each
  slot's :class:`~netcore.sfu.allocator.LayerAllocator` picks one every
  ``ALLOCATE_INTERVAL`` from the subscriber's estimate and requested
  maximum height; the slot switches on the new layer's key frame (asked
  through that layer's arbiter), its timestamps re-based from both
  layers' sender reports (RFC 3550 section 6.4.1) when both have sent one.
* Transcoding (``SfuConfig.transcoding``, docs/transcode.md): a video slot
  whose budget stays below the publisher's only layer for
  :data:`TRANSCODE_AFTER`, or whose subscriber cannot decode the
  publisher's codec, needs a job of the :class:`TranscodePlanner`, which
  places it on a worker that announced capacity (:meth:`SfuCore.worker_ready`;
  ``TranscodeStarted``).  The worker joins the room with ``job=`` (it is no
  participant of the room to the others: it is given the source track only,
  whatever the layers, and its own sections are not tracks), and each of
  its sections becomes a layer of the ORIGINAL publication (a rendition),
  which the slots' allocators choose among like simulcast layers; a key
  frame request for a rendition goes to the worker.  A worker gone
  (:meth:`SfuCore.worker_gone`) or a job stopped takes its renditions away:
  the slots on them go back to the publisher's stream at its next key
  frame (asked at once), and the job is placed again where there is room.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from netcore.demux import PacketKind
from netcore.dtls.certificate import DtlsCertificate
from netcore.errors import UsageError
from netcore.net import Address, Receive, Transmit
from netcore.peer import events as pe
from netcore.peer.transport import TransportState
from netcore.rtp.feedback import Remb
from netcore.rtp.keyframes import KEYFRAME_DETECTORS
from netcore.rtp.packet import RtpPacket
from netcore.rtp.rtcp import SenderReport
from netcore.rtp.vp8 import vp8_keyframe_size, vp8_temporal_id
from netcore.sdp.attributes import Fingerprint
from netcore.sdp.candidate import Candidate
from netcore.sdp.jsep import Negotiator
from netcore.sdp.model import LocalTransport
from netcore.sfu.allocator import (ALLOCATE_INTERVAL, AUDIO_ALLOWANCE, MAX_PROBE_INTERVAL, PROBE_HEADROOM,
                                   PROBE_INTERVAL, slot_budget)
from netcore.sfu.changes import Changes, changed
from netcore.sfu.events import (ActiveSpeakerChanged, KeyFrameRequested, LayerSwitched, ParticipantJoined,
                                ParticipantLeft, SfuEvent, Slot, SlotsChanged, TrackPublished, TranscodeStarted,
                                TranscodeStopped)
from netcore.sfu.participant import Layer, Participant, Publication, SlotState, plan_intents
from netcore.sfu.rewrite import ALL_TEMPORAL, Forwarded
from netcore.sfu.router import PortRouter
from netcore.sfu.speaker import SpeakerDetector, decode_audio_level
from netcore.sfu.timers import TransportTimers
from netcore.transcode.ladder import codec_ladder, simulcast_ladder
from netcore.transcode.planner import (LADDER, STOP_AFTER, Job, JobStarted, JobStopped, TranscodePlanner,
                                       rendition_needed)

__all__ = ["SfuCore", "SfuConfig", "SfuStats", "REMB_INTERVAL", "MIN_REMB", "MAX_PARTICIPANTS", "TRANSCODE_AFTER",
           "job_id", "subscriber_budget"]

REMB_INTERVAL = 1.0  # seconds between REMBs to each publisher
# Regular RTCP reports to each participant at most this often (libwebrtc's interval for video): the reduced
# minimum of RFC 3550 section 6.2 sent some 30 SR/SDES compounds a second to every subscriber of a
# 10 Mbit/s estimate, the largest per-subscriber cost once forwarding moved to C
RTCP_MIN_INTERVAL = 1.0
MIN_REMB = 100_000  # bit/s: a publisher nobody watches still sends something worth switching to
MAX_PARTICIPANTS = 1000  # per server: joins beyond are refused (UsageError)
MAX_HEIGHT_REQUESTS = 64  # per subscriber: requested maximum heights kept (one per track it sees)
AT_CAP = 0.95  # an estimate this close to the link cap is the cap (see subscriber_budget)
TRANSCODE_BELOW = 0.8  # a slot needs the ladder when its budget is below this share of the publisher's layer
TRANSCODE_AFTER = 2.0  # seconds a slot's budget stays below the publisher's only layer before a ladder is asked
# (a new subscriber's estimate starts low and climbs within about that: no worker is started for every join)


@dataclass
class SfuConfig:
    """What the server is: its certificate, its sockets and the addresses it tells clients."""

    certificate: DtlsCertificate
    local_addresses: list[Address]
    public_addresses: list[Address] | None = None  # --public-ip: what clients are told (1:1 NAT)
    max_participants: int = MAX_PARTICIPANTS
    wallclock_offset: float = 0.0
    max_bitrate: float = 2_500_000  # the most a publisher is asked (REMB) to send per video track
    # the most one participant's send-side estimate may reach (everything the server sends it): above
    # max_bitrate, so that the best subscriber of a single-layer publisher has the allocator's up margin
    # over the whole stream and takes every temporal layer of it
    max_subscriber_bitrate: float = 10_000_000
    last_n: int | None = None  # video of at most this many most recent speakers to each subscriber (None: all)
    transcoding: bool = False  # slots ask for renditions (workers announce with SfuCore.worker_ready)
    transcode_hold: float = STOP_AFTER  # seconds a rendition nobody needs keeps running
    random: Callable[[int], bytes] = field(default=os.urandom, repr=False)


class SfuStats:
    """Counters of the whole server (the daemon's Prometheus metrics read them)."""

    __slots__ = ("datagrams", "packets_received", "forwarded_packets", "forwarded_bytes", "keyframe_requests",
                 "keyframe_requests_coalesced", "layer_switches", "temporal_switches", "last_n_admissions", "joins",
                 "leaves", "drops", "transcodes_started", "transcodes_stopped")

    def __init__(self) -> None:
        self.datagrams = self.packets_received = self.forwarded_packets = self.forwarded_bytes = 0
        self.keyframe_requests = self.keyframe_requests_coalesced = self.layer_switches = 0
        self.temporal_switches = 0  # a slot's VP8 TID changed within its layer
        self.last_n_admissions = 0  # video slots resumed as their publisher came back into a last-N
        self.joins = self.leaves = 0
        self.transcodes_started = self.transcodes_stopped = 0
        self.drops: dict[str, int] = {}

    def drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1


class SfuCore:
    """Rooms, participants, tracks and forwarding; see the module docstring."""

    def __init__(self, config: SfuConfig) -> None:
        if not config.local_addresses:
            raise UsageError("the call server needs at least one local address")
        self.config = config
        self.router = PortRouter()
        self.stats = SfuStats()
        self.participants: dict[str, Participant] = {}
        self.rooms: dict[str, dict[str, Participant]] = {}
        self._speakers: dict[str, SpeakerDetector] = {}
        self._last_n: dict[str, int | None] = {}  # per-room limits set apart from the server's
        self._out: deque[Transmit] = deque()
        self._events: deque[SfuEvent] = deque()
        self._dirty: list[Participant] = []
        self._next_remb: float | None = None
        # Sees every publisher's packet as received and every RTCP compound (the recorder,
        # netcore.sfu.recorder): ``tap.rtp(publication, RtpReceived, now)``, ``tap.rtcp(participant, packets, now)``.
        self.tap = None
        # Also see every publisher's packet, each ``observer.rtp(publication, RtpReceived, now)`` (the input
        # manager of a studio room, netcore.broadcast.studio)
        self.observers: list = []
        # ``slot_filter(subscriber, publication)``: False keeps that publication out of that subscriber's slots
        # (a studio's viewers are given its program only); None: every track goes to every other participant
        self.slot_filter: Callable[[Participant, Publication], bool] | None = None
        # ``demand(publication, now)``: bit/s wanted of a video publication beyond its own subscribers' (a
        # studio's source: what the program's subscribers take), in its publisher's REMB; None: nothing beyond
        self.demand: Callable[[Publication, float], float] | None = None
        # The compiled forwarding path (netcore.sfu.fastpath.FastPath), None: every packet in Python.
        self.fastpath = None
        self._receiving: tuple[Participant, Address] | None = None  # whose datagram the Python path handles now
        self.timers = TransportTimers()  # the transports' deadlines
        # Sees every packet a publication forwards, after duplicates are dropped, every layer and rendition (the
        # links to other call servers, netcore.sfu.cascade): ``relay.forward(publication, layer, packet, now)``,
        # and every publisher's RTCP compound: ``relay.sender_reports(participant, packets, now)``.
        self.relay = None
        self._next_allocation: float | None = None
        # The layers whose key-frame arbiter holds a request (id(layer) -> (publication, layer)): the only ones
        # with a deadline, so that next_deadline, asked after every datagram, need not walk every participant.
        self._held: dict[int, tuple[Publication, Layer]] = {}
        self.planner = TranscodePlanner(config.transcode_hold)
        self._jobs: dict[str, tuple[str, Job, tuple]] = {}  # job id -> (room, job, renditions) while placed
        self._job_workers: dict[str, str] = {}  # job id -> the worker's participant id, once it joined
        self._rendition_layers: dict[tuple[str, str], Layer] = {}  # (worker participant, its mid) -> layer
        public = config.public_addresses or config.local_addresses
        self._candidates = tuple(
            Candidate(str(i + 1), 1, "udp", (126 << 24) | (65535 - i) << 8 | 255, host, port, "host")
            for i, (host, port) in enumerate(public))

    # -- signaling ------------------------------------------------------------------

    def join(self, room_id: str, participant_id: str, offer: str, now: float,
             job: str | None = None) -> tuple[str, tuple[Slot, ...]]:
        """Answer a participant's offer (raises the SDP layer's ParseError for a bad one).

        Returns the SDP answer and what its slots carry. A participant that
        offers again (after a failure, a reload) replaces its earlier self.
        ``job``: a transcoding worker joins for the job of that id
        (:class:`TranscodeStarted`): one receive section for the source and
        one send section per rendition, in the job's order.
        """
        self.catch_up(now)
        source = self._job_source(room_id, job) if job is not None else None
        if participant_id in self.participants:
            self.leave(participant_id, now, "rejoined")
        if len(self.participants) >= self.config.max_participants:
            raise UsageError("the call server is full")
        cert = self.config.certificate
        negotiator = Negotiator(
            LocalTransport((Fingerprint("sha-256", cert.fingerprint()),), self._candidates, end_of_candidates=True,
                           ice_lite=True, answer_setup="passive"), random=self.config.random)
        intents = plan_intents(offer, self._new_ssrc)
        answer, session = negotiator.handle_offer(offer, intents)
        options = {"wallclock_offset": self.config.wallclock_offset, "random": self.config.random,
                   "max_bitrate": self.config.max_subscriber_bitrate, "cname": "netcore-sfu",
                   "rtcp_ssrc": self._new_ssrc(), "rtcp_min_interval": RTCP_MIN_INTERVAL, "repair_copies": False}
        participant = Participant(participant_id, room_id, negotiator, session, intents, options, cert, now)
        transport = participant.transport
        for address in self.config.local_addresses:
            transport.ice.add_local_address(address)
        transport.start(now)
        self.participants[participant_id] = participant
        self.router.add(participant_id, negotiator.ice_ufrag)
        self.stats.joins += 1
        if source is not None and job is not None:
            self._join_worker(participant, source, job, now)
            return str(answer), self.slots(participant_id)
        room = self.rooms.setdefault(room_id, {})
        room[participant_id] = participant
        self._speakers.setdefault(room_id, SpeakerDetector())
        self._events.append(ParticipantJoined(room_id, participant_id))
        for publication in participant.publications.values():
            self._events.append(TrackPublished(room_id, participant_id, publication.mid, publication.kind))
        self._assign(room_id, now)
        self._apply_last_n(room_id, now)
        self._touch(participant)
        self._drain(now)
        if self._next_remb is None:
            self._next_remb = now + REMB_INTERVAL
        if self._next_allocation is None:
            self._next_allocation = now + ALLOCATE_INTERVAL
        return str(answer), self.slots(participant_id)

    def add_remote(self, participant, now: float) -> None:
        """A publisher of another call server's room (netcore.sfu.cascade.RemotePublisher): its tracks are
        ordinary publications of this server's room of the same id, given to its subscribers' slots."""
        if participant.id in self.participants:
            self.leave(participant.id, now, "rejoined")
        self.participants[participant.id] = participant
        room_id = participant.room_id
        self.rooms.setdefault(room_id, {})[participant.id] = participant
        self._speakers.setdefault(room_id, SpeakerDetector())
        self._events.append(ParticipantJoined(room_id, participant.id))
        for publication in participant.publications.values():
            self._events.append(TrackPublished(room_id, participant.id, publication.mid, publication.kind))
        self._assign(room_id, now)
        self._apply_last_n(room_id, now)
        self._drain(now)
        if self._next_remb is None:
            self._next_remb = now + REMB_INTERVAL
        if self._next_allocation is None:
            self._next_allocation = now + ALLOCATE_INTERVAL

    def deliver(self, participant, now: float) -> None:
        """A remote publisher's transport has events (packets from a link): take them now."""
        self._touch(participant)
        self._drain(now)

    def request_layer_keyframe(self, publication: Publication, layer: Layer, now: float, reason: str) -> None:
        """A key frame of ``layer`` for a link to another call server, through the layer's arbiter."""
        self._request_keyframe(publication, now, layer=layer, reason=reason)
        self._drain(now)

    def leave(self, participant_id: str, now: float, reason: str = "left") -> None:
        """Close a participant's transport (BYE, close_notify) and free its tracks and slots."""
        self.catch_up(now)
        participant = self.participants.pop(participant_id, None)
        if participant is None:
            return
        changed()  # its slots, and the slots of its publications, go (netcore.sfu.changes)
        if self.fastpath is not None:
            self.fastpath.forget(participant)
            for publication in participant.publications.values():
                self.fastpath.drop_publication(publication)
        self.timers.forget(participant_id)
        room = self.rooms.get(participant.room_id, {})
        room.pop(participant_id, None)
        participant.transport.close(now)
        self._collect(participant)
        while participant.transport.poll_event() is not None:
            pass
        self.router.remove(participant_id)
        freed: set[str] = set()
        for publication in participant.publications.values():
            for slot in list(publication.slots):
                slot.attach(None)
                freed.add(slot.owner.id)
        for slot in participant.slots:
            slot.attach(None)
        self._left_transcoding(participant, now)
        self.stats.leaves += 1
        self._events.append(ParticipantLeft(
            participant.room_id, participant_id, reason, now - participant.joined_at, participant.packets_received,
            participant.packets_forwarded, participant.bytes_forwarded))
        speakers = self._speakers.get(participant.room_id)
        if speakers is not None and speakers.remove(participant_id, now):
            self._events.append(ActiveSpeakerChanged(participant.room_id, speakers.speaker))
        if room:
            self._assign(participant.room_id, now, freed)
            self._apply_last_n(participant.room_id, now)
        else:
            self.rooms.pop(participant.room_id, None)
            self._speakers.pop(participant.room_id, None)
            self._last_n.pop(participant.room_id, None)
        self._drain(now)

    def request_max_height(self, participant_id: str, publisher_id: str, mid: str, max_height: int | None,
                           now: float, max_fps: float | None = None) -> None:
        """The subscriber wants at most ``max_height`` lines of that track (None: no limit), and at most
        ``max_fps`` frames a second of it (None: every frame; VP8 temporal layers, the TIDs that fit); its
        simulcast layer and TID are chosen again at once. Raises UsageError for a participant or track not
        in its room."""
        self.catch_up(now)
        participant = self.participants.get(participant_id)
        publisher = self.participants.get(publisher_id)
        if participant is None or publisher is None or publisher.room_id != participant.room_id \
                or mid not in publisher.publications:
            raise UsageError("no such track in the participant's room")
        key = (publisher_id, mid)
        if max_height is None:
            participant.max_heights.pop(key, None)
        elif key in participant.max_heights or len(participant.max_heights) < MAX_HEIGHT_REQUESTS:
            participant.max_heights[key] = max(1, int(max_height))
        if max_fps is None:
            participant.max_fps.pop(key, None)
        elif key in participant.max_fps or len(participant.max_fps) < MAX_HEIGHT_REQUESTS:
            participant.max_fps[key] = max(1.0, float(max_fps))
        for slot in participant.slots:
            if slot.publication is publisher.publications[mid] and (_allocated(slot.publication)
                                                                    or self.config.transcoding):
                self._allocate(slot, now)
        self._drain(now)

    def set_last_n(self, room_id: str, last_n: int | None, now: float) -> None:
        """Limit the room's forwarded video to the ``last_n`` most recent speakers for each subscriber
        (None: the server's limit); applied at once."""
        self.catch_up(now)
        if last_n is not None and last_n < 0:
            raise UsageError("last-N is a count of speakers, 0 or more")
        self._last_n[room_id] = last_n
        self._apply_last_n(room_id, now)
        self._drain(now)

    def last_n(self, room_id: str) -> int | None:
        """The room's limit (its own, else the server's; None: none)."""
        return self._last_n[room_id] if self._last_n.get(room_id) is not None else self.config.last_n

    # -- transcoding workers --------------------------------------------------------

    def worker_ready(self, worker: str, capacity: int, now: float) -> None:
        """A transcoding worker announced ``capacity`` renditions; jobs waiting for room start on it."""
        self.catch_up(now)
        self.planner.worker_ready(worker, capacity, now)
        self._planned(now)
        self._drain(now)

    def worker_gone(self, worker: str, now: float) -> None:
        """A worker's link closed: its renditions go (their slots fall back to the publisher's stream)
        and its jobs are placed on the others with room."""
        self.catch_up(now)
        self.planner.worker_gone(worker, now)
        self._planned(now)
        self._drain(now)

    def worker_load(self) -> dict[str, tuple[int, int]]:
        """Each worker's (renditions running, capacity)."""
        return self.planner.load()

    def _job_source(self, room_id: str, job: str) -> Publication:
        """The publication a worker joining for ``job`` transcodes (UsageError if the job is not placed)."""
        placed = self._jobs.get(job)
        if placed is None or placed[0] != room_id or self.planner.worker_of(placed[1]) is None:
            raise UsageError(f"no transcoding job {job!r} in this room")
        publisher, mid = placed[1].source
        return self.participants[publisher].publications[mid]

    def _join_worker(self, participant: Participant, source: Publication, job: str, now: float) -> None:
        """The worker's sections: its receive section carries the source (the publisher's own stream
        only), each send section becomes a rendition layer of the source."""
        previous = self._job_workers.get(job)
        if previous is not None and previous != participant.id:
            self.leave(previous, now, "replaced")
        self._job_workers[job] = participant.id
        participant.transcodes, participant.job = source, job
        renditions = self._jobs[job][2]
        for publication, rendition in zip(participant.publications.values(), renditions):
            # (RTX is unwrapped by the worker's transport: only the media payload types reach the source)
            media = {pt: name for pt, name in publication.codecs.items() if name != "RTX"}
            if publication.kind != "video" or any(source.codecs.get(pt, name) != name for pt, name in media.items()):
                self.stats.drop("rendition_payload_type")  # a payload type the source uses for another codec
                continue
            source.codecs.update(media)
            layer = Layer(rendition.name, owner=participant)
            source.layers.append(layer)
            self._rendition_layers[(participant.id, publication.mid)] = layer
        for slot in source.slots:  # the renditions' payload types, mapped onto each subscriber's
            slot.downtrack.payload_types = slot.payload_types(source)
        slot = participant.free_slot("video")
        if slot is not None:
            slot.attach(source)
            if source.simulcast:
                self._allocate(slot, now)
        self._events.append(ParticipantJoined(participant.room_id, participant.id))
        self._touch(participant)
        self._drain(now)

    def _left_transcoding(self, participant: Participant, now: float) -> None:
        """A participant left: a worker's renditions go; a subscriber's needs are released; a publisher's
        jobs stop."""
        if participant.transcodes is not None:
            self._drop_renditions(participant, now)
            if self._job_workers.get(participant.job or "") == participant.id:
                del self._job_workers[participant.job or ""]
            return
        self.planner.release_all(participant.id, now)
        for publication in participant.publications.values():
            self.planner.source_gone((participant.id, publication.mid), now)
        self._planned(now)

    def _drop_renditions(self, worker: Participant, now: float) -> None:
        """Take ``worker``'s rendition layers out of its source: the slots on them go back to the
        publisher's stream (from its next key frame, asked now) and choose again."""
        source = worker.transcodes
        assert source is not None
        gone = [la for la in source.layers if la.owner is worker]
        if not gone:
            return
        for layer in gone:
            source.layers.remove(layer)
            if layer.ssrc is not None:
                source.by_ssrc.pop(layer.ssrc, None)
        for key in [k for k in self._rendition_layers if k[0] == worker.id]:
            del self._rendition_layers[key]
        original = source.layers[0]
        ssrcs = {la.ssrc for la in gone}
        for slot in source.slots:
            downtrack = slot.downtrack
            if slot.layer in gone:
                slot.layer = None
            if downtrack.wanted in ssrcs or (downtrack.rewriter.source in ssrcs and downtrack.wanted is None):
                if original.ssrc is not None and downtrack.want(original.ssrc) and slot.owner.connected:
                    slot.layer = original if source.simulcast else None
                    self._request_keyframe(source, now, layer=original)
            if source.simulcast:
                self._allocate(slot, now)

    def _plan(self, slot: SlotState, now: float) -> None:
        """Does the slot need a rendition (netcore.transcode.planner.rendition_needed)? Tell the planner
        when that changes."""
        publication, subscriber = slot.publication, slot.owner
        assert publication is not None
        codec = publication.source_codec
        if (not self.config.transcoding or slot.kind != "video" or subscriber.transcodes is not None
                or publication.rids or codec is None):
            return
        laddered = slot.job is not None and slot.job.codec is None
        # (below TRANSCODE_BELOW of the layer: until it has renditions the publisher's REMB follows its
        # best subscriber, whose budget is then about the layer's bitrate, and no reason for a ladder)
        need = rendition_needed(codec, tuple(slot.codecs), publication.own_bitrates(now),
                                subscriber_budget(subscriber, now) / TRANSCODE_BELOW, laddered)
        max_height = subscriber.max_heights.get((publication.owner.id, publication.mid))
        height = publication.layers[0].height
        if need is None and max_height is not None and height and max_height < height and not publication.rids:
            need = LADDER  # it shows the track smaller than the publisher's only layer (room.quality)
            slot.short_since = now - TRANSCODE_AFTER  # a request, not an estimate: no wait
        if need == LADDER:
            slot.short_since = now if slot.short_since is None else slot.short_since
            if not laddered and now - slot.short_since < TRANSCODE_AFTER:
                need = None
        else:
            slot.short_since = None
        key = (publication.owner.id, publication.mid)
        job = None if need is None else Job(key, None, len(simulcast_ladder())) if need == LADDER else Job(key, need, 1)
        if job == slot.job:
            return
        if slot.job is not None:
            self.planner.release(subscriber.id, slot.job, now)  # type: ignore[arg-type]
        slot.job = job
        if job is not None:
            renditions = simulcast_ladder(codec) if job.codec is None else codec_ladder(job.codec)
            self._jobs.setdefault(job_id(job), (publication.owner.room_id, job, renditions))
            self.planner.need(subscriber.id, job, now)
        self._planned(now)

    def _planned(self, now: float) -> None:
        """The planner's decisions: a job placed is told (TranscodeStarted); one stopped or lost takes its
        worker's participant out (TranscodeStopped), a lost one waits to be placed again."""
        while (event := self.planner.poll_event()) is not None:
            name = job_id(event.job)
            placed = self._jobs.get(name)
            if placed is None:
                continue
            room_id, job, renditions = placed
            if isinstance(event, JobStarted):
                publisher = self.participants.get(job.source[0])
                publication = publisher.publications.get(job.source[1]) if publisher else None
                self.stats.transcodes_started += 1
                self._events.append(TranscodeStarted(room_id, name, job.source[0], job.source[1], event.worker,
                                                     (publication.source_codec if publication else None) or "VP8",
                                                     renditions))
                continue
            reason = event.reason if isinstance(event, JobStopped) else "worker_gone"
            self.stats.transcodes_stopped += 1
            self._events.append(TranscodeStopped(room_id, name, event.worker, reason))
            if isinstance(event, JobStopped) or not self.planner.pending(job):
                del self._jobs[name]  # (a job lost that nobody needs any more is forgotten by the planner too)
            worker = self._job_workers.pop(name, None)
            if worker is not None:
                self.leave(worker, now, reason)

    # -- publishers inside the server (netcore.broadcast) -----------------------------

    def add_local_publisher(self, publisher: Participant, now: float, changed: set[str] | None = None) -> None:
        """Put a publisher made in this server into its room (a studio's program): its publications are
        given slots like any participant's, and it is sent their subscribers' key frame requests
        (``publisher.transport.request_keyframe``). It is no participant: no transport of its own, no slots.
        ``changed``: participants whose slots the caller emptied (told SlotsChanged with the others)."""
        self.catch_up(now)
        room = self.rooms.setdefault(publisher.room_id, {})
        room[publisher.id] = publisher
        self._speakers.setdefault(publisher.room_id, SpeakerDetector())
        self._events.append(ParticipantJoined(publisher.room_id, publisher.id))
        for publication in publisher.publications.values():
            self._events.append(TrackPublished(publisher.room_id, publisher.id, publication.mid, publication.kind))
        self._assign(publisher.room_id, now, set(changed or ()))
        self._drain(now)

    def remove_local_publisher(self, publisher: Participant, now: float) -> None:
        """Take a publisher of :meth:`add_local_publisher` out of its room; its slots are given other tracks."""
        self.catch_up(now)
        room = self.rooms.get(publisher.room_id, {})
        if room.get(publisher.id) is not publisher:
            return
        del room[publisher.id]
        freed: set[str] = set()
        for publication in publisher.publications.values():
            for slot in list(publication.slots):
                slot.attach(None)
                freed.add(slot.owner.id)
        self._events.append(ParticipantLeft(publisher.room_id, publisher.id, "left", now - publisher.joined_at,
                                            publisher.packets_received, 0, 0))
        if room:
            self._assign(publisher.room_id, now, freed)
        else:
            self.rooms.pop(publisher.room_id, None)
            self._speakers.pop(publisher.room_id, None)
            self._last_n.pop(publisher.room_id, None)
        self._drain(now)

    def inject(self, publication: Publication, packet: RtpPacket, now: float) -> None:
        """Forward ``packet`` as received on ``publication`` (a local publisher's: a studio's program)."""
        self.catch_up(now)
        self._forward(publication, pe.RtpReceived(publication.mid, packet.ssrc, packet), now)
        self._drain(now)

    def slots(self, participant_id: str) -> tuple[Slot, ...]:
        participant = self.participants[participant_id]
        return tuple(Slot(s.mid, s.kind, s.publication.owner.id, s.publication.mid, layer_heights(s.publication))
                     if s.publication else Slot(s.mid, s.kind) for s in participant.slots)

    def _heights_changed(self, publication: Publication) -> None:
        """The heights of ``publication``'s layers changed (a layer's first key frame, or a new size): its
        subscribers are told their slots again, with the new heights."""
        for subscriber in sorted({slot.owner.id: slot.owner for slot in publication.slots}.values(), key=lambda p: p.id):
            if self.participants.get(subscriber.id) is subscriber:
                self._events.append(SlotsChanged(subscriber.room_id, subscriber.id, self.slots(subscriber.id)))

    # -- the contract ---------------------------------------------------------------

    def handle_datagram(self, datagram: Receive, now: float) -> None:
        self.stats.datagrams += 1
        fast = self.fastpath
        if fast is not None:
            kind = datagram.kind
            if kind is PacketKind.RTP and fast.by_source:
                inbound = fast.by_source.get(datagram.source)
                if inbound is not None:
                    taken = inbound.native.receive(datagram.data, now, Changes.count)
                    if type(taken) is int:  # forwarded in C, its bookkeeping logged for _replay
                        self.stats.forwarded_packets += taken
                        self.stats.forwarded_bytes += inbound.native.last_bytes
                        fast.logged(inbound, taken, now)
                        if fast.collecting:
                            self._out.extend(fast.transmits())
                        return
                    if taken is not None:
                        self.taken_back(inbound, taken, now)
                        return
            elif kind is PacketKind.RTCP and fast.by_source:
                inbound = fast.by_source.get(datagram.source)
                if inbound is not None:
                    taken = inbound.native.receive_rtcp(datagram.data, now)
                    if taken is True:  # feedback that can wait: logged for _replay
                        fast.logged_rtcp(inbound, now)
                        return
                    if taken is not None:
                        self.taken_back(inbound, taken, now)
                        return
            if fast.pending:
                self._replay(now)
        participant_id = self.router.route(datagram)
        if participant_id is None:
            return
        participant = self.participants.get(participant_id)
        if participant is None:
            return
        transport = participant.transport
        self._receiving = (participant, datagram.source)
        try:
            transport.handle_datagram(datagram, now)
            if datagram.kind is PacketKind.STUN and datagram.source is not None:
                source = datagram.source
                if any(p.remote.address == source for p in transport.ice.valid_pairs):
                    self.router.bind(participant_id, source)
            self._touch(participant)
            self._drain(now)
        finally:
            self._receiving = None

    def read_socket(self, fd: int, now: float) -> list:
        """A daemon's read of its media socket ``fd`` through the compiled path (:meth:`FastPath.read
        <netcore.sfu.fastpath.FastPath.read>`): what it took is counted here, the rest returned in the order
        read, for :meth:`handle_datagram` (``(data, source)``) and :meth:`taken_back` (``(inbound, taken)``)."""
        rest, taken, forwarded, size = self.fastpath.read(fd, now, Changes.count)
        if taken:
            stats = self.stats
            stats.datagrams += taken
            stats.forwarded_packets += forwarded
            stats.forwarded_bytes += size
        return rest

    def catch_up(self, now: float) -> None:
        """The core's bookkeeping of what the compiled receive path took, now: the core calls it before it
        changes or reads its state; a hook that starts watching packets (a recording) calls it first, so
        that it sees none that arrived before."""
        if self.fastpath is not None and self.fastpath.pending:
            self._replay(now)

    def _replay(self, now: float) -> None:
        """Run the core's bookkeeping for the packets the compiled receive path took since the last call, each
        at its arrival time and in order, as if it had been handled then (see netcore.sfu.fastpath)."""
        for inbound, log in self.fastpath.take_logs():
            participant = inbound.participant
            if self.participants.get(participant.id) is not participant:
                continue
            transport = participant.transport
            for entry in log:
                if len(entry) == 3:  # an RTCP compound: the transport's, its events drained below
                    transport.replay_rtcp(entry[0], entry[1])
                    continue
                plain, at = entry
                event = transport.replay_rtp(plain, at)
                if event is not None:
                    self._on_rtp(participant, event, at, (0, 0))
            self._touch(participant)
        self._drain(now)

    def taken_back(self, inbound, taken: str | bytes | tuple, now: float) -> None:
        """The compiled receive path unprotected a packet and dropped it (``taken``: the SRTP counter of why),
        unprotected an RTCP compound the core must handle now (``taken``: its plain bytes), or forwarded a
        packet to the tracks it kept and gave the core the rest: (plain, packets, bytes, ejected, group)."""
        fast = self.fastpath
        self._replay(now)  # what it took before this packet, first
        participant = inbound.participant
        if type(taken) is str:
            fast.dropped(inbound, taken)
            return
        if type(taken) is bytes:  # an RTCP compound that must not wait (a NACK, a key-frame request, ...)
            if self.participants.get(participant.id) is participant:
                participant.transport.replay_rtcp(taken, now)
                self._touch(participant)
                self._drain(now)
            return
        plain, count, size, ejected, group = taken
        fast.eject(group, ejected)
        if fast.collecting:
            self._out.extend(fast.transmits())
        if self.participants.get(participant.id) is not participant:
            return
        self._receiving = (participant, inbound.source)
        try:
            event = participant.transport.replay_rtp(plain, now)
            if event is not None:
                self._on_rtp(participant, event, now, (count, size))
            self._touch(participant)
            self._drain(now)
        finally:
            self._receiving = None

    def handle_timeout(self, now: float) -> None:
        self.catch_up(now)
        for participant in self.timers.due(now, self.participants):
            participant.transport.handle_timeout(now)
            self._touch(participant)
        for key, (publication, layer) in list(self._held.items()):
            if not self._live(publication, layer):
                del self._held[key]  # its publisher left, or the layer went (a rendition dropped)
                continue
            if layer.arbiter.handle_timeout(now):
                self._request_upstream(publication, layer, now, "held")
            if layer.arbiter.next_deadline() is None:
                del self._held[key]
        if self._next_allocation is not None and now >= self._next_allocation:
            self._next_allocation = now + ALLOCATE_INTERVAL if self.participants else None
            planning = self.config.transcoding
            for participant in list(self.participants.values()):
                for slot in participant.slots:
                    if slot.publication is not None and (_allocated(slot.publication)
                                                         or planning and slot.kind == "video"):
                        self._allocate(slot, now)
        held = self.planner.next_deadline()
        if held is not None and now >= held:
            self.planner.handle_timeout(now)
            self._planned(now)
        if self._next_remb is not None and now >= self._next_remb:
            self._next_remb = now + REMB_INTERVAL if self.participants else None
            self._send_rembs(now)
        self._drain(now)

    def poll_transmit(self) -> Transmit | None:
        return self._out.popleft() if self._out else None

    def poll_event(self) -> SfuEvent | None:
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        best = self._next_remb
        if self.fastpath is not None and self.fastpath.replay_at is not None:
            best = self.fastpath.replay_at if best is None else min(best, self.fastpath.replay_at)
        held = self.planner.next_deadline()
        if held is not None and (best is None or held < best):
            best = held
        if self._next_allocation is not None and (best is None or self._next_allocation < best):
            best = self._next_allocation
        deadline = self.timers.next_deadline()
        if deadline is not None and (best is None or deadline < best):
            best = deadline
        for _, layer in self._held.values():
            held = layer.arbiter.next_deadline()
            if held is not None and (best is None or held < best):
                best = held
        return best

    def _live(self, publication: Publication, layer: Layer) -> bool:
        """Whether ``layer`` is still one of ``publication``'s, and it one of a present participant's."""
        owner = publication.owner
        return (self.participants.get(owner.id) is owner and owner.publications.get(publication.mid) is publication
                and layer in publication.layers)

    # -- events of the transports ---------------------------------------------------

    def _touch(self, participant: Participant) -> None:
        self._dirty.append(participant)

    def _drain(self, now: float) -> None:
        while self._dirty:
            participant = self._dirty.pop()
            transport = participant.transport
            while (event := transport.poll_event()) is not None:
                self._on_event(participant, event, now)
            self._collect(participant)
            self.timers.refresh(participant)

    def _collect(self, participant: Participant) -> None:
        transport, out = participant.transport, self._out
        while (transmit := transport.poll_transmit()) is not None:
            out.append(transmit)
        if self.fastpath is not None:
            out.extend(self.fastpath.transmits())

    def _on_event(self, participant: Participant, event: object, now: float) -> None:
        if isinstance(event, pe.RtpReceived):
            self._on_rtp(participant, event, now)
        elif isinstance(event, pe.RtcpReceived):
            if self.tap is not None:
                self.tap.rtcp(participant, event.packets, now)
            if participant.publications:
                self._sender_reports(participant, event.packets)
                if self.relay is not None:
                    self.relay.sender_reports(participant, event.packets, now)
        elif isinstance(event, pe.KeyFrameRequested):
            slot = participant.slot_by_ssrc.get(event.ssrc)
            if slot is not None and slot.publication is not None:
                self._request_keyframe(slot.publication, now, layer=slot.layer)
        elif isinstance(event, pe.TransportConnected):
            participant.connected = True
            changed()  # its slots take packets from now on (netcore.sfu.changes)
            if self.fastpath is not None:
                self.fastpath.connected(participant)
            for slot in participant.slots:
                if slot.publication is not None and slot.kind == "video":
                    self._request_keyframe(slot.publication, now, layer=slot.layer)
        elif isinstance(event, (pe.TransportFailed, pe.TransportClosed)):
            if participant.id in self.participants:
                reason = "failed" if isinstance(event, pe.TransportFailed) else "closed"
                self._dirty.append(participant)  # its last transmits
                self.leave(participant.id, now, reason)

    # -- forwarding -----------------------------------------------------------------

    def _on_rtp(self, participant: Participant, event: pe.RtpReceived, now: float,
                done: tuple[int, int] | None = None) -> None:
        """A publisher's packet; ``done``: the compiled receive path forwarded it already to its installed
        slots, (packets, bytes) sent (see netcore.sfu.fastpath)."""
        if participant.transcodes is not None:
            self._forward_rendition(participant, event, now)
            return
        publication = participant.publications.get(event.mid)
        if publication is None:
            self.stats.drop("no_publication")
            return
        if self.tap is not None:
            self.tap.rtp(publication, event, now)
        for observer in self.observers:
            observer.rtp(publication, event, now)
        self._forward(publication, event, now, done)

    def _forward_rendition(self, worker: Participant, event: pe.RtpReceived, now: float) -> None:
        """A worker's packet: forwarded as a packet of the rendition layer of the source publication."""
        layer = self._rendition_layers.get((worker.id, event.mid))
        source = worker.transcodes
        if layer is None or source is None:
            self.stats.drop("no_publication")
            return
        ssrc = event.packet.ssrc
        new = layer.ssrc != ssrc
        if new:
            if layer.ssrc is not None:
                source.by_ssrc.pop(layer.ssrc, None)
            layer.ssrc = ssrc
            source.by_ssrc[ssrc] = layer
        self._forward(source, event, now)
        if new:
            for slot in source.slots:
                self._allocate(slot, now)

    def _forward(self, publication: Publication, event: pe.RtpReceived, now: float,
                 done: tuple[int, int] | None = None) -> None:
        packet = event.packet
        stats = self.stats
        stats.packets_received += 1
        publication.owner.packets_received += 1
        publication.packets += 1
        publication.bytes += len(packet.data)
        ssrc = packet.ssrc
        simulcast = publication.simulcast
        layer = publication.by_ssrc.get(ssrc)
        if layer is None:
            if event.retransmitted and not simulcast:
                stats.drop(Forwarded.WRONG_SOURCE)  # a repair of a stream the publisher left
                return
            # the first packet, a new simulcast layer (by its RID), or the publisher restarted its stream
            layer = publication.layer(ssrc, event.rid)
            if layer is None:
                stats.drop("unknown_rid")
                return
            if simulcast:
                for slot in publication.slots:
                    self._allocate(slot, now)
        if not layer.received.arrived(ssrc, packet.sequence_number):
            stats.drop(Forwarded.DUPLICATE)
            return
        layer.meter.add(len(packet.data), now)
        if packet.timestamp == layer.keyframe_timestamp:
            layer.keyframe_bytes += len(packet.data)  # the rest of its latest key frame
        if self.relay is not None:
            self.relay.forward(publication, layer, packet, now)
        layer.codec = publication.codecs.get(packet.payload_type, layer.codec)
        started = simulcast and publication.note_packet(layer, packet.timestamp)
        if publication.kind == "video" and publication.codecs.get(packet.payload_type) == "VP8":
            tid = vp8_temporal_id(packet.payload)
            if tid is not None:
                layer.temporal_meter(tid).add(len(packet.data), now)
                if packet.marker:
                    layer.temporal_frame(tid, now)
        level = None
        if publication.kind == "audio":
            if publication.audio_level_id is not None:
                level = packet.extension(publication.audio_level_id)
                value = decode_audio_level(level)
                speakers = self._speakers.get(publication.owner.room_id)
                if value is not None and speakers is not None and speakers.level(publication.owner.id, value, now):
                    self._events.append(ActiveSpeakerChanged(publication.owner.room_id, speakers.speaker))
                    self._apply_last_n(publication.owner.room_id, now)
        is_key = False
        if publication.kind == "video":
            detector = KEYFRAME_DETECTORS.get(publication.codecs.get(packet.payload_type, ""))
            is_key = detector is not None and detector(packet.payload)
            if is_key:
                layer.arbiter.keyframe_received()
                if packet.timestamp != layer.keyframe_timestamp:
                    layer.keyframe_timestamp, layer.keyframe_bytes = packet.timestamp, len(packet.data)
                # (its size orders the layers: kept without simulcast too, for renditions that may come)
                size = vp8_keyframe_size(packet.payload) if detector is KEYFRAME_DETECTORS["VP8"] else None
                if size is not None and size[1] != layer.height:
                    before = layer_heights(publication)
                    layer.height = size[1]
                    if layer_heights(publication) != before:
                        self._heights_changed(publication)
        fast = self.fastpath
        if fast is not None:  # the installed slots first, in C; those it gives back are in the loop below
            if done is None:
                count, size, installed = fast.forward(publication, ssrc, packet, now)
            else:  # forwarded by the compiled receive path already
                (count, size), installed = done, fast.installed(publication, ssrc)
            stats.forwarded_packets += count
            stats.forwarded_bytes += size
            if installed != len(publication.slots):
                self._forward_slots(publication, layer, event, now, level, is_key, started)
            if done is None and self._receiving is not None:
                self._arm(publication, layer, packet, event)
            return
        self._forward_slots(publication, layer, event, now, level, is_key, started)

    def _forward_slots(self, publication: Publication, layer: Layer, event: pe.RtpReceived, now: float,
                       level: bytes | None, is_key: bool, started: bool) -> None:
        """The packet to each slot the compiled path does not forward it to (every slot without it)."""
        packet, stats, fast = event.packet, self.stats, self.fastpath
        ssrc, simulcast = packet.ssrc, publication.simulcast
        for slot in publication.slots:
            subscriber = slot.owner
            if not subscriber.connected:
                continue
            downtrack = slot.downtrack
            handle = downtrack.fast
            if handle is not None and handle.source == ssrc:
                continue  # forwarded above
            if ssrc != downtrack.rewriter.source and ssrc != downtrack.wanted:
                if simulcast:
                    current = slot.layer
                    if started and current is not None and publication.paused(current, now):
                        self._allocate(slot, now)  # its layer stopped while this one sends: move at once
                    continue  # a layer this slot does not forward
                if not event.retransmitted:
                    downtrack.want(ssrc)
            waiting = downtrack.wanted == ssrc or (downtrack.resuming and downtrack.wanted is None
                                                   and ssrc == downtrack.rewriter.source)
            if waiting and not is_key and not downtrack.paused:
                # still waiting: ask again (the arbiter lets one through per interval, and a request
                # whose key frame never came is repeated after KEYFRAME_RETRY)
                self._request_keyframe(publication, now, counted=False, layer=layer)
            out = downtrack.forward(packet, now, level)
            if out is None:
                continue
            if subscriber.transport.send_rtp(out, now):
                stats.forwarded_packets += 1
                stats.forwarded_bytes += len(out.data)
                self._dirty.append(subscriber)
                if fast is not None:
                    fast.install(slot, ssrc, publication.codecs.get(packet.payload_type, ""), now)

    def _watched(self, publication: Publication) -> bool:
        """Whether the tap or an observer wants ``publication``'s packets as they arrive (one without a
        ``watches`` method wants every publication's)."""
        for watcher in (self.tap, *self.observers):
            if watcher is not None and getattr(watcher, "watches", lambda p: True)(publication):
                return True
        return False

    def _arm(self, publication: Publication, layer: Layer, packet: RtpPacket, event: pe.RtpReceived) -> None:
        """Let the compiled receive path take the next packets of this one's source if all the core would do
        with them is its bookkeeping and forwarding to the installed slots (netcore.sfu.fastpath: arming)."""
        receiving = self._receiving
        owner = publication.owner
        if (receiving is None or receiving[0] is not owner or event.retransmitted or self.relay is not None
                or packet.data[0] & 0x20 or self._watched(publication)):
            return  # another participant's datagram (a rendition), a repair, a padded packet, or packets watched
        if (layer.received._highest & 0xFFFF) != packet.sequence_number:
            return  # not the newest of its source
        ssrc, simulcast = packet.ssrc, publication.simulcast
        for slot in publication.slots:
            if not slot.owner.connected:
                continue
            downtrack = slot.downtrack
            handle = downtrack.fast
            if handle is not None and handle.source == ssrc:
                continue  # forwarded in C
            if downtrack.wanted == ssrc or downtrack.resuming:
                return  # waits for a key frame: the core asks for it
            if downtrack.rewriter.source == ssrc:
                if downtrack.paused:
                    continue  # left out: the replay closes its numbers up as the loop would
                return  # forwarded in Python
            if not simulcast:
                return  # the loop would switch it to this source
        self.fastpath.arm(owner, publication, packet, receiving[1], Changes.count)

    def request_keyframe(self, publication: Publication, now: float, reason: str = "recorder") -> None:
        """Ask ``publication``'s publisher for a key frame of every layer (a recorder's or a studio's
        request: through each layer's arbiter)."""
        self.catch_up(now)
        for layer in publication.layers:
            self._request_keyframe(publication, now, layer=layer, reason=reason)
        self._dirty.append(publication.owner)

    def _request_keyframe(self, publication: Publication, now: float, counted: bool = True,
                          layer: Layer | None = None, reason: str | None = None) -> None:
        """A subscriber needs a key frame of ``publication`` (of ``layer`` with simulcast; ``counted``: a
        request of its own, not a repetition while its slot waits; ``reason`` for the event, when not a
        subscriber's)."""
        if layer is None:
            if publication.simulcast:
                return  # no layer chosen yet: the slot asks when its allocator picks one
            layer = publication.layers[0]
        if layer.ssrc is None:
            return  # nothing arrived yet: a slot waiting for its first key frame asks when it comes
        if layer.arbiter.request(now, counted):
            self._request_upstream(publication, layer, now, reason or ("subscriber" if counted else "retry"))
        elif counted:
            self.stats.keyframe_requests_coalesced += 1
        if layer.arbiter.next_deadline() is not None:
            self._held[id(layer)] = (publication, layer)

    def _request_upstream(self, publication: Publication, layer: Layer, now: float, reason: str) -> None:
        if layer.ssrc is None:
            return
        self.stats.keyframe_requests += 1
        owner = layer.owner or publication.owner  # a rendition's key frame is its worker's to make
        self._events.append(KeyFrameRequested(owner.room_id, owner.id, publication.mid, reason))
        owner.transport.request_keyframe(layer.ssrc, now)
        self._dirty.append(owner)

    # -- simulcast ------------------------------------------------------------------

    def _allocate(self, slot: SlotState, now: float) -> None:
        """Let the slot's allocator choose its layer and TID; a new layer is wanted from its next key frame
        (without simulcast only the TID is chosen)."""
        publication = slot.publication
        assert publication is not None
        self._plan(slot, now)
        subscriber = slot.owner
        layers = publication.ordered(slot.codecs, own_only=subscriber.transcodes is not None)
        if not layers:
            return
        allocator = slot.allocator
        downtrack = slot.downtrack
        temporal_switches = allocator.temporal_switches
        max_fps = subscriber.max_fps.get((publication.owner.id, publication.mid))
        if not publication.simulcast:
            allocator.current = 0
            infos = publication.layer_infos(layers, now)
            allocator.decide(infos, subscriber_budget(subscriber, now), now, max_fps=max_fps)
            self._set_temporal(slot, temporal_switches)
            self._probe(subscriber, allocator.next_rate(infos, max_fps=max_fps), now)
            return
        allocator.current = layers.index(slot.layer) if slot.layer in layers else None
        switches = allocator.switches
        max_height = subscriber.max_heights.get((publication.owner.id, publication.mid))
        infos = publication.layer_infos(layers, now)
        index = allocator.decide(infos, subscriber_budget(subscriber, now), now, max_height, max_fps)
        self._set_temporal(slot, temporal_switches)
        if allocator.switches != switches:
            subscriber.layer_switches += 1
            self.stats.layer_switches += 1
            self._events.append(LayerSwitched(
                subscriber.room_id, subscriber.id, publication.owner.id, publication.mid,
                slot.layer.rid if slot.layer is not None else None,
                layers[index].rid if index is not None else None))
        if index is None:
            return
        self._probe(subscriber, allocator.next_rate(infos, max_height, max_fps), now)
        layer = layers[index]
        if layer is slot.layer and layer.ssrc in (downtrack.rewriter.source, downtrack.wanted):
            return  # (the same layer under a new SSRC, a publisher restart, is wanted again below)
        if slot.layer is not None and slot.layer in layers and layers.index(slot.layer) < index:
            subscriber.probe_interval = PROBE_INTERVAL  # up: the link is not short any more
        slot.layer = layer
        assert layer.ssrc is not None
        source = downtrack.rewriter.source
        forwarded = publication.by_ssrc.get(source) if source is not None else None  # the timeline to keep
        if downtrack.want(layer.ssrc, _timestamp_delta(forwarded, layer, downtrack.clock_rate)) \
                and subscriber.connected:
            self._request_keyframe(publication, now, layer=layer)

    def _set_temporal(self, slot: SlotState, temporal_switches: int) -> None:
        """The slot forwards up to the TID its allocator chose (the down-track moves up where decodable)."""
        allocator = slot.allocator
        slot.downtrack.max_temporal = ALL_TEMPORAL if allocator.temporal is None else allocator.temporal
        if slot.downtrack.fast is not None:  # the compiled track applies the cap from the next frame on
            slot.downtrack.fast.track.max_temporal = slot.downtrack.max_temporal
        self.stats.temporal_switches += allocator.temporal_switches - temporal_switches

    def _probe(self, subscriber: Participant, next_rate: float | None, now: float) -> None:
        """Ask the subscriber's estimator to probe for the next step up (a layer, or a TID of its layer),
        when there is one and its estimate does not show room for it (see netcore.sfu.allocator:
        probing)."""
        if next_rate is None or now < subscriber.next_probe:
            return
        video, audio = _shares(subscriber, now)
        rate = next_rate * PROBE_HEADROOM * video + AUDIO_ALLOWANCE * audio
        if rate <= subscriber.transport.target_bitrate:
            return  # it fits already: the allocator's hold is running
        subscriber.transport.estimator.request_probe(rate)
        subscriber.next_probe = now + subscriber.probe_interval
        subscriber.probe_interval = min(2 * subscriber.probe_interval, MAX_PROBE_INTERVAL)

    def _sender_reports(self, participant: Participant, packets: tuple) -> None:
        """Keep each simulcast layer's latest SR: it maps the layer's timestamps to the common clock."""
        publications = ([participant.transcodes] if participant.transcodes is not None
                        else participant.publications.values())
        for packet in packets:
            if isinstance(packet, SenderReport):
                for publication in publications:
                    layer = publication.by_ssrc.get(packet.ssrc)
                    if layer is not None:
                        ntp = packet.ntp_timestamp
                        layer.sender_report = ((ntp >> 32) + (ntp & 0xFFFFFFFF) / 2**32, packet.rtp_timestamp)

    def _send_rembs(self, now: float) -> None:
        """REMB to each video publisher: what its most capable subscriber can take for it."""
        for participant in self.participants.values():
            if participant.transport.state is not TransportState.CONNECTED or participant.transcodes is not None:
                continue  # (a worker's renditions have the bitrates of their ladder)
            sources, need = [], 0.0
            for publication in participant.publications.values():
                if publication.kind != "video" or publication.source is None:
                    continue
                sources += [la.ssrc for la in publication.layers if la.ssrc is not None and la.owner is None]
                if publication.simulcast:
                    # subscribers choose among its layers (RID streams or renditions): the original as good
                    # as the links allow; following the best subscriber instead would move the layer those
                    # below it are judged against, and start and stop their renditions with its estimate
                    need = self.config.max_bitrate
                for slot in publication.slots:
                    if slot.owner.transcodes is not None:
                        continue  # a worker takes what it is sent: no reason to send more
                    # the share the allocator gives this slot: only slots receiving media take one
                    need = max(need, subscriber_budget(slot.owner, now))
                if self.demand is not None:  # watched through something made of it (a studio's program)
                    need = max(need, self.demand(publication, now))
            if sources:
                bitrate = int(max(MIN_REMB, min(need, self.config.max_bitrate)))
                participant.transport.send_feedback([Remb(participant.transport.rtcp_ssrc, bitrate, sources)], now)
                self._dirty.append(participant)

    # -- slots ----------------------------------------------------------------------

    def _assign(self, room_id: str, now: float, changed: set[str] | None = None) -> None:
        """Give every unwatched track of the room a free slot of each other participant (join order)."""
        room = self.rooms.get(room_id, {})
        changed = set() if changed is None else changed
        for subscriber in room.values():
            watched = {id(s.publication) for s in subscriber.slots if s.publication is not None}
            for publisher in room.values():
                if publisher is subscriber:
                    continue
                for publication in publisher.publications.values():
                    if id(publication) in watched or (self.slot_filter is not None
                                                      and not self.slot_filter(subscriber, publication)):
                        continue
                    slot = subscriber.free_slot(publication.kind)
                    if slot is None:
                        continue
                    slot.attach(publication)
                    watched.add(id(publication))
                    changed.add(subscriber.id)
                    if publication.simulcast:
                        self._allocate(slot, now)
                    elif subscriber.connected and publication.kind == "video":
                        self._request_keyframe(publication, now)
        for participant_id in sorted(changed):
            if participant_id in room:
                self._events.append(SlotsChanged(room_id, participant_id, self.slots(participant_id)))

    def _apply_last_n(self, room_id: str, now: float) -> None:
        """Pause the video slots whose publisher is outside each subscriber's last-N, resume (from a key
        frame, asked for now) those back inside it."""
        room = self.rooms.get(room_id)
        speakers = self._speakers.get(room_id)
        if not room or speakers is None:
            return
        limit = self.last_n(room_id)
        order = speakers.recent(list(room))
        for subscriber in room.values():
            admitted = None if limit is None else set([p for p in order if p != subscriber.id][:limit])
            for slot in subscriber.slots:
                publication = slot.publication
                if slot.kind != "video" or publication is None:
                    continue
                downtrack = slot.downtrack
                if admitted is not None and publication.owner.id not in admitted:
                    downtrack.pause()
                elif downtrack.paused:
                    self.stats.last_n_admissions += 1
                    if downtrack.resume() and subscriber.connected:
                        self._request_keyframe(publication, now, layer=slot.layer)

    def _new_ssrc(self) -> int:
        return int.from_bytes(self.config.random(4), "big") or 1


def _allocated(publication: Publication) -> bool:
    """Its subscribers' slots choose among its layers: simulcast, or VP8 temporal layers."""
    return publication.simulcast or publication.has_temporal_layers


def _shares(subscriber: Participant, now: float) -> tuple[int, int]:
    """How many video and audio slots of ``subscriber`` receive media: their track sends (a packet
    within LAYER_TIMEOUT) and no last-N pauses them. A screen section before a share carries a track
    that sends nothing; given a share, it would keep every camera a layer lower."""
    video = audio = 0
    for slot in subscriber.slots:
        publication = slot.publication
        if publication is not None and not slot.downtrack.paused and publication.sending(now):
            if slot.kind == "video":
                video += 1
            else:
                audio += 1
    return max(1, video), audio


def subscriber_budget(subscriber: Participant, now: float) -> float:
    """What one video slot of ``subscriber`` may take (netcore.sfu.allocator.slot_budget).

    An estimate at the transport's ceiling (``SfuConfig.max_subscriber_bitrate``) says the link is not
    what limits it: the budget is unbounded then, or a publisher sent at a cap that high would never fit
    the allocator's margin for going up to it."""
    transport = subscriber.transport
    if transport.target_bitrate >= AT_CAP * transport.config.max_bitrate:
        return float("inf")
    video, audio = _shares(subscriber, now)
    return slot_budget(transport.target_bitrate, video, audio)


def _timestamp_delta(old: Layer | None, new: Layer, clock_rate: int) -> int | None:
    """What to add to ``new``'s RTP timestamps to put them on ``old``'s timeline (RFC 3550 section 6.4.1:
    each layer's SR pairs one of its timestamps with the sender's NTP clock), None without both SRs."""
    if old is None or old.sender_report is None or new.sender_report is None:
        return None
    (ntp_old, rtp_old), (ntp_new, rtp_new) = old.sender_report, new.sender_report
    return (rtp_old - rtp_new + round((ntp_new - ntp_old) * clock_rate)) & 0xFFFFFFFF


def job_id(job: Job) -> str:
    """A job's name on the wire: ``publisher/mid/ladder`` or ``publisher/mid/CODEC``."""
    return f"{job.source[0]}/{job.source[1]}/{job.codec or 'ladder'}"


def layer_heights(publication: Publication) -> tuple[int, ...]:
    """The distinct heights of ``publication``'s layers known from their key frames, lowest first (audio: none)."""
    return tuple(sorted({layer.height for layer in publication.layers if layer.height}))
