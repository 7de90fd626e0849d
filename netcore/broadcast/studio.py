"""The input manager of studio rooms on a call server core (sans-IO, beside :class:`SfuCore`).

A studio is a room of the call server whose participants are the sources
(each camera, microphone or screen is one of their publications) and an
operator who chooses what goes on air.  Started (``studio.start``), the
room gets one more publisher, the **program** (participant id
:data:`PROGRAM_ID`), made in the server by a :class:`ProgramSwitcher`:
one VP8 video and one Opus audio publication, forwarded by the core to
every slot that carries them like any publisher's tracks (each subscriber's
own rewriting, NACK history, congestion control, key-frame arbiter).

* Every source packet reaches :meth:`Studio.rtp` through the core's
  ``observers``; what the switcher puts on air is handed back to the core
  with :meth:`SfuCore.inject` as a packet of the program. A simulcast
  camera goes on air as its largest layer that sends.
* A subscriber of the program asking for a key frame (PLI/FIR) asks the
  source on air (or the one being cut to), through that source's arbiter.
* A cut asks the new source for a key frame at once, and again (at most
  once per arbiter interval) while it waits for it.
* Each camera is asked (REMB) for what the program's best subscriber
  takes (the core's ``demand``), even while off air: a cut puts it on air
  as it is sent.
* **Viewers**: in a studio room, a participant that publishes nothing and
  is not the operator is given the program only (the core's
  ``slot_filter``); the operator and the sources see every track.
* ``studio.audio`` may pick the **mix** of every microphone
  (netcore.broadcast.mixer): its frames are made every 20 ms by
  :meth:`Studios.handle_timeout`, their coding run by ``execute`` (the call
  server's worker thread) and put on air when done.
* The card's frames come from :meth:`Studios.handle_timeout`
  (:meth:`Studios.next_deadline` says when): the adapter runs that timer.

Commands (:meth:`Studios.command`) are the operator's ``studio.cut``,
``studio.audio`` and ``studio.card`` as signaling relays them (it checks
that the sender is the room's operator; docs/signaling.md).
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from netcore.broadcast.card import CardSource
from netcore.broadcast.mixer import MIX, MIX_PAYLOAD_TYPE, MixClock, MixJob, OpusMixer
from netcore.broadcast.switcher import CARD, PROGRAM_CODECS, ProgramSwitcher, SourceKey
from netcore.errors import UsageError
from netcore.peer import events as pe
from netcore.rtp.keyframes import KEYFRAME_DETECTORS
from netcore.sfu.changes import changed
from netcore.sfu.core import subscriber_budget
from netcore.sfu.events import ParticipantLeft, SfuEvent, TrackPublished
from netcore.sfu.keyframes import KeyFrameArbiter
from netcore.sfu.participant import Publication

__all__ = ["Studio", "Studios", "ProgramPublisher", "PROGRAM_ID", "PROGRAM_MIDS", "Execute", "run_inline"]

PROGRAM_ID = "program"  # the program's participant id in its studio room
PROGRAM_MIDS = {"video": "program-video", "audio": "program-audio"}

# Runs ``work`` (a mix frame: decode, sum, encode) and calls ``done(its result, now)`` when it is done: the call
# server runs it on a worker thread; without one it runs at once
Execute = Callable[[Callable[[], Optional[bytes]], Callable[[Optional[bytes], float], None], float], None]


def run_inline(work: Callable[[], bytes | None], done: Callable[[bytes | None, float], None], now: float) -> None:
    done(work(), now)


class _ProgramTransport:
    """What the core reaches through a publisher's transport: key-frame requests (to the studio)."""

    def __init__(self, studio: Studio) -> None:
        self._studio = studio

    def request_keyframe(self, ssrc: int, now: float) -> None:
        self._studio.keyframe_requested(now)

    def poll_event(self) -> None:
        return None

    def poll_transmit(self) -> None:
        return None

    def next_deadline(self) -> None:
        return None  # no timers: the studio's are the core's


class ProgramPublisher:
    """The program as a publisher of its room: two publications, no slots, no transport of its own."""

    def __init__(self, studio: Studio, room_id: str, now: float) -> None:
        self.id = PROGRAM_ID
        self.room_id = room_id
        self.joined_at = now
        self.transport = _ProgramTransport(studio)
        self.slots: list = []
        self.slot_by_ssrc: dict = {}
        self.max_heights: dict = {}
        self.max_fps: dict = {}
        self.connected = True
        self.transcodes = None
        self.job = None
        self.packets_received = 0
        self.publications: dict[str, Publication] = {}
        for kind, mid in PROGRAM_MIDS.items():
            publication = Publication(self, mid, kind, dict(PROGRAM_CODECS[kind]))  # type: ignore[arg-type]
            # every request goes on to the source's own arbiter, which does the holding back
            publication.layers[0].arbiter = KeyFrameArbiter(interval=0.0)
            self.publications[mid] = publication

    def free_slot(self, kind: str) -> None:
        return None


class Studio:
    """One studio room's program (see the module docstring)."""

    def __init__(self, core, room_id: str, operator: str, now: float, card_frame: bytes | None = None,
                 random: Callable[[int], bytes] = os.urandom, execute: Execute = run_inline) -> None:
        self.core = core
        self.room_id = room_id
        self.operator = operator
        self.random = random
        self.execute = execute
        card = CardSource(card_frame, self._ssrc()) if card_frame else None
        self.switcher = ProgramSwitcher(self._ssrc(), self._ssrc(), card)
        self.mix = MixClock(self._ssrc())
        self._mixer: OpusMixer | None = None  # made at the first frame of the mix (it holds the coders)
        self.switcher.add_source(MIX, "audio", {MIX_PAYLOAD_TYPE: "OPUS"})
        self.publisher = ProgramPublisher(self, room_id, now)
        self.keyframe_requests = 0  # sent to sources by this studio (cuts, waits, program subscribers)
        for participant in list(core.rooms.get(room_id, {}).values()):
            if participant is not self.publisher:
                for publication in participant.publications.values():
                    self._add(publication)
        if card is not None:
            self.switcher.cut(CARD, now)  # the card until the first cut

    def _ssrc(self) -> int:
        return int.from_bytes(self.random(4), "big") or 1

    def open(self, now: float, viewer: Callable[[object], bool] = lambda participant: False) -> None:
        """The program joins the room; the slots of the participants ``viewer`` picks are emptied first (they
        are given the program in their place)."""
        emptied = set()
        for participant in list(self.core.rooms.get(self.room_id, {}).values()):
            if participant is not self.publisher and viewer(participant):
                for slot in participant.slots:
                    if slot.publication is not None:
                        slot.attach(None)
                        emptied.add(participant.id)
        self.core.add_local_publisher(self.publisher, now, emptied)

    def close(self, now: float) -> None:
        self.core.remove_local_publisher(self.publisher, now)

    def program(self, kind: str) -> Publication:
        return self.publisher.publications[PROGRAM_MIDS[kind]]

    # -- sources ----------------------------------------------------------------------

    def _add(self, publication: Publication) -> None:
        if publication.owner.transcodes is None and publication.owner is not self.publisher:
            key = (publication.owner.id, publication.mid)
            self.switcher.add_source(key, publication.kind, publication.codecs)
            if publication.kind == "audio":
                self.mix.add_source(key)

    def _publication(self, key: SourceKey) -> Publication | None:
        participant = self.core.participants.get(key[0])
        return participant.publications.get(key[1]) if participant is not None else None

    def on_event(self, event: SfuEvent, now: float) -> None:
        """The core's events: tracks published and participants gone change the sources."""
        if getattr(event, "room_id", None) != self.room_id:
            return
        if isinstance(event, TrackPublished) and event.participant_id != PROGRAM_ID:
            publication = self._publication((event.participant_id, event.mid))
            if publication is not None:
                self._add(publication)
        elif isinstance(event, ParticipantLeft) and event.participant_id != PROGRAM_ID:
            for key in [k for k in self.switcher.sources if k[0] == event.participant_id]:
                self.switcher.remove_source(key, now)
                self.mix.remove_source(key)
            self._flush_card(now)

    # -- the operator -----------------------------------------------------------------

    def cut(self, key: SourceKey, now: float) -> None:
        """Put a video source (or :data:`CARD`) on air at its next key frame, asked for now."""
        if self.switcher.cut(key, now):
            self._ask(key, now)
        self._flush_card(now)

    def pick_audio(self, key: SourceKey | None, now: float) -> None:
        """Put a microphone, the mix (:data:`MIX`: every microphone summed) or nothing (None) on air."""
        self.switcher.pick_audio(key, now)
        if key == MIX:
            self.mix.start(now)
        else:
            self.mix.stop()

    # -- packets ----------------------------------------------------------------------

    def rtp(self, publication: Publication, event: pe.RtpReceived, now: float) -> None:
        """A source's packet (the core's observer): on air as the program's, or not."""
        if publication.owner.room_id != self.room_id:
            return
        key = (publication.owner.id, publication.mid)
        if publication.kind == "audio" and self.mix.running:
            self.mix.add(key, event.packet.payload)
        if publication.simulcast and event.packet.ssrc != self._top_layer(publication, now):
            return  # a simulcast camera goes on air as its best layer
        out = self.switcher.packet(key, event.packet, now)
        if out is not None:
            self.core.inject(self.program(publication.kind), out, now)
        elif self.switcher.waiting == key and publication.kind == "video":
            detector = KEYFRAME_DETECTORS.get(publication.codecs.get(event.packet.payload_type, ""))
            if detector is not None and not detector(event.packet.payload):
                self._ask(key, now)  # still waiting: the source's arbiter lets one through per interval

    @staticmethod
    def _top_layer(publication: Publication, now: float) -> int | None:
        """The SSRC of the publisher's largest layer that sends (not paused; renditions left out): the one a
        simulcast camera is put on air as. A move to another layer is a switch like a cut (at its key
        frame, asked for)."""
        layers = [la for la in publication.ordered(own_only=True)
                  if la.meter.active(now) and not publication.paused(la, now)]
        return layers[-1].ssrc if layers else None

    def keyframe_requested(self, now: float) -> None:
        """A subscriber of the program lost its picture: the source on air (or being cut to) is asked."""
        key = self.switcher.keyframe_source()
        if key is not None:
            self._ask(key, now)

    def _ask(self, key: SourceKey, now: float) -> None:
        publication = self._publication(key)
        if publication is not None:
            self.keyframe_requests += 1
            self.core.request_keyframe(publication, now, reason="studio")

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self.switcher.next_deadline(), self.mix.next_deadline()) if d is not None]
        return min(deadlines, default=None)

    def handle_timeout(self, now: float) -> None:
        self._flush_card(now)
        for job in self.mix.handle_timeout(now):
            if self._mixer is None:
                self._mixer = OpusMixer()
            mixer = self._mixer
            self.execute(lambda job=job: mixer.mix(job), lambda payload, at, job=job: self._mixed(job, payload, at),
                         now)

    def _mixed(self, job: MixJob, payload: bytes | None, now: float) -> None:
        """A frame of the mix is coded: on air if the mix still is."""
        if payload is None or not self.mix.running:
            return
        out = self.switcher.packet(MIX, self.mix.packet(job, payload), now)
        if out is not None:
            self.core.inject(self.program("audio"), out, now)

    def _flush_card(self, now: float) -> None:
        for packet in self.switcher.handle_timeout(now):
            self.core.inject(self.program("video"), packet, now)

    def demand(self, now: float) -> float:
        """The bit/s the program's best subscriber takes for its video (the allocator's share of one of its
        slots), as the core's REMB counts a subscriber's need."""
        return max((subscriber_budget(slot.owner, now) for slot in self.program("video").slots), default=0.0)

    def counters(self) -> dict[str, int]:
        """Its totals so far (the call server's metrics)."""
        card = self.switcher.card
        return {"cuts": self.switcher.cuts, "keyframe_requests": self.keyframe_requests,
                "card_frames": card.frames if card is not None else 0, "mix_frames": self.mix.frames,
                "mix_dropped": self.mix.dropped}

    def state(self) -> dict:
        """What the operator's view shows: the sources and what is on air."""
        sources = [{"publisher": k[0], "track": k[1], "kind": kind} for k, kind in self.switcher.sources.items()
                   if k not in (CARD, MIX)]
        return {"room_id": self.room_id, "operator": self.operator, "program": PROGRAM_ID,
                "tracks": dict(PROGRAM_MIDS), "card": self.switcher.card is not None, "sources": sources,
                **self.switcher.state.as_dict()}


def source_key(payload: dict | None) -> SourceKey | None:
    """A command's ``source`` ({"publisher", "track"}, {"card": true} or {"mix": true}) as a key (None: none
    given)."""
    if not payload:
        return None
    if not isinstance(payload, dict):
        raise UsageError("a source is {publisher, track}, {card: true} or {mix: true}")
    if payload.get("card"):
        return CARD
    if payload.get("mix"):
        return MIX
    publisher, track = payload.get("publisher"), payload.get("track")
    if not isinstance(publisher, str) or not isinstance(track, str):
        raise UsageError("a source is {publisher, track} or {card: true}")
    return publisher, track


class Studios:
    """Every studio of one call server core: the core's observer and slot filter, the operator's commands."""

    def __init__(self, core, card_frame: bytes | None = None, users: Callable[[str], str] = lambda sid: "",
                 random: Callable[[int], bytes] = os.urandom, execute: Execute = run_inline) -> None:
        self.core = core
        self.card_frame = card_frame
        self.execute = execute
        self.users = users  # participant (session) id -> its user: who is the operator
        self.random = random
        self.studios: dict[str, Studio] = {}
        self._ended: dict[str, int] = {}  # the counters of studios that ended
        core.observers.append(self)
        core.slot_filter = self._slot_filter
        core.demand = self._demand

    def start(self, room_id: str, operator: str, now: float) -> Studio:
        """Make ``room_id`` a studio run by user ``operator`` (again: the same studio, its operator kept)."""
        studio = self.studios.get(room_id)
        if studio is None:
            self.core.catch_up(now)
            changed()  # its sources' packets come through the core from now on (netcore.sfu.changes)
            studio = self.studios[room_id] = Studio(self.core, room_id, operator, now, self.card_frame, self.random,
                                                    self.execute)
            studio.open(now, lambda participant: self._viewer(participant, operator))  # who joined before
            studio.handle_timeout(now)
        return studio

    def stop(self, room_id: str, now: float) -> bool:
        """The program leaves the room (its room goes with it when it was the last)."""
        studio = self.studios.pop(room_id, None)
        if studio is None:
            return False
        for name, value in studio.counters().items():
            self._ended[name] = self._ended.get(name, 0) + value
        studio.close(now)
        return True

    def counters(self) -> dict[str, int]:
        """The totals of every studio this server ran (cuts, key frame requests, card and mix frames)."""
        totals = dict(self._ended)
        for studio in self.studios.values():
            for name, value in studio.counters().items():
                totals[name] = totals.get(name, 0) + value
        return totals

    def command(self, kind: str, room_id: str, payload: dict, now: float) -> Studio:
        """``studio.cut`` {source}, ``studio.audio`` {source or null}, ``studio.card`` {}: UsageError for a
        room that is no studio or a source that is not in it."""
        studio = self.studios.get(room_id)
        if studio is None:
            raise UsageError(f"room {room_id!r} is no studio")
        if kind == "studio.cut":
            key = source_key(payload.get("source"))
            if key is None:
                raise UsageError("studio.cut needs a source")
            studio.cut(key, now)
        elif kind == "studio.audio":
            studio.pick_audio(source_key(payload.get("source")), now)
        elif kind == "studio.card":
            studio.cut(CARD, now)
        else:
            raise UsageError(f"no studio command {kind!r}")
        return studio

    # -- the core's hooks -------------------------------------------------------------

    def watches(self, publication: Publication) -> bool:
        """Whether :meth:`rtp` wants ``publication``'s packets as they arrive (its room is a studio)."""
        return publication.owner.room_id in self.studios

    def rtp(self, publication: Publication, event: pe.RtpReceived, now: float) -> None:
        studio = self.studios.get(publication.owner.room_id)
        if studio is not None:
            studio.rtp(publication, event, now)

    def on_event(self, event: SfuEvent, now: float) -> None:
        """The core's events: a studio's sources come and go; a studio whose room has nobody left but its
        program ends."""
        room_id = getattr(event, "room_id", "")
        studio = self.studios.get(room_id)
        if studio is None:
            return
        studio.on_event(event, now)
        if isinstance(event, ParticipantLeft) and all(
                p is studio.publisher for p in self.core.rooms.get(room_id, {}).values()):
            self.stop(room_id, now)

    def _slot_filter(self, subscriber, publication: Publication) -> bool:
        """In a studio, a viewer (publishes nothing, not the operator) is given the program only."""
        studio = self.studios.get(subscriber.room_id)
        if studio is None or publication.owner is studio.publisher:
            return True
        return not self._viewer(subscriber, studio.operator)

    def _viewer(self, participant, operator: str) -> bool:
        return not participant.publications and self.users(participant.id) != operator

    def _demand(self, publication: Publication, now: float) -> float:
        """A camera of a studio is asked (REMB) for what the best subscriber of the program takes: any camera
        may be cut to, and goes on air as it is sent."""
        studio = self.studios.get(publication.owner.room_id)
        return studio.demand(now) if studio is not None else 0.0

    def next_deadline(self) -> float | None:
        deadlines = [d for s in self.studios.values() if (d := s.next_deadline()) is not None]
        return min(deadlines, default=None)

    def handle_timeout(self, now: float) -> None:
        for studio in list(self.studios.values()):
            deadline = studio.next_deadline()
            if deadline is not None and deadline <= now:
                studio.handle_timeout(now)
