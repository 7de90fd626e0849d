"""Recording at the call server: the core's received packets into the recorder's journals (sans-IO).

::

    recorder = SfuRecorder(core, open_storage, wallclock_offset=time.time() - loop.time())
    recorder.start(room_id, now)          # signaling's recording.start: journal every track of the room
    recorder.on_event(event, now)         # each SfuEvent of the core (joins, leaves)
    recorder.stop(room_id, now)           # recording.stop, or the room ended: the manifest gets ended_at

The recorder is the core's :attr:`~netcore.sfu.core.SfuCore.tap`: every
``RtpReceived`` of a publisher reaches :meth:`rtp` after SRTP and RTX
unwrapping, before any rewriting (the publisher's SSRC, sequence numbers
and timestamps), and every decrypted RTCP compound reaches :meth:`rtcp`,
whose sender reports go to the track of their SSRC.  One
:class:`~netcore.record.logger.RoomLogger` per recorded room does the
rest (docs/recording.md); ``open_storage(room_id, now)`` gives it where to
write (the daemon: a :class:`~netcore.record.writer.DirectoryStorage`
under ``--record-dir``).

A track is added at its first packet with the codec its payload type was
agreed for (name, clock rate, channels and ``a=fmtp`` parameters).  The
logger's key frame requests (when a video track's recording starts, and
after ``keyframe_interval`` seconds without one) go to the publisher
through the track's :class:`~netcore.sfu.keyframes.KeyFrameArbiter`, like
a subscriber's.  They are polled on the packet path only when the logger's
next deadline has passed, so a packet of a recorded track costs one record
write and a comparison; a packet of an unrecorded room costs a dict lookup.

A participant that offers again (a reload) is recorded as a new
participant ``ID.2``, ``ID.3``... with the same name: the file creator
makes a file per participant and a publisher's new SSRC would otherwise
be a second stream in one track.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from netcore.errors import NetcoreError
from netcore.peer import events as pe
from netcore.record.logger import RoomLogger, RoomStorage
from netcore.record.manifest import Codec
from netcore.rtp.rtcp import SenderReport
from netcore.sfu.changes import changed
from netcore.sfu.events import ParticipantJoined, ParticipantLeft
from netcore.sfu.participant import Participant, Publication

__all__ = ["SfuRecorder", "RecordedRoom"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _safe(name: str) -> str:
    return (_UNSAFE.sub("_", name) or "x")[:60]


@dataclass
class RecordedRoom:
    """One room being recorded: its logger and the names it gave participants and tracks."""

    room_id: str
    logger: RoomLogger
    members: dict[str, str] = field(default_factory=dict)  # core participant id -> recorded participant
    tracks: dict[tuple[str, str], str] = field(default_factory=dict)  # (participant id, mid) -> track id
    publications: dict[str, Publication] = field(default_factory=dict)  # track id -> publication
    ssrcs: dict[int, str] = field(default_factory=dict)  # publisher SSRC -> track id
    joins: dict[str, int] = field(default_factory=dict)  # core participant id -> times recorded
    next_poll: float | None = None  # the logger's next key frame deadline (cached for the packet path)


class SfuRecorder:
    """Journals the rooms signaling marks recorded (see the module docstring)."""

    def __init__(self, core, open_storage: Callable[[str, float], RoomStorage], *, wallclock_offset: float = 0.0,
                 keyframe_interval: float = 5.0, keyframe_retry: float = 1.0,
                 names: Callable[[str], str] | None = None,
                 on_end: Callable[[str, RoomStorage], None] | None = None) -> None:
        self.core = core
        self.open_storage = open_storage
        self.wallclock_offset = wallclock_offset
        self.keyframe_interval = keyframe_interval
        self.keyframe_retry = keyframe_retry
        self.names = names or (lambda participant_id: "")
        self.on_end = on_end  # (room id, its storage) once a recording has ended (announce it to workers)
        self._storage: dict[str, RoomStorage] = {}
        self.rooms: dict[str, RecordedRoom] = {}
        self.errors = 0  # journal writes that failed (disk full...): that room stops recording
        core.tap = self

    # -- control ----------------------------------------------------------------------

    def start(self, room_id: str, now: float) -> bool:
        """Start journalling ``room_id`` (its participants so far and whoever joins); False if it already is."""
        if room_id in self.rooms:
            return False
        self.core.catch_up(now)  # packets that arrived before are not journalled
        changed()  # its publications' packets come through the core from now on (netcore.sfu.changes)
        storage = self._storage[room_id] = self.open_storage(room_id, now)
        logger = RoomLogger(room_id, storage, now=now,
                            wallclock_offset=self.wallclock_offset, keyframe_interval=self.keyframe_interval,
                            keyframe_retry=self.keyframe_retry)
        room = self.rooms[room_id] = RecordedRoom(room_id, logger)
        for participant_id in self.core.rooms.get(room_id, {}):
            self._join(room, participant_id, now)
        return True

    def stop(self, room_id: str, now: float) -> bool:
        """End the room's recording: every track closed, ``ended_at`` in the manifest. False if not recording."""
        room = self.rooms.pop(room_id, None)
        if room is None:
            return False
        room.logger.close(now)
        self._ended(room_id)
        return True

    def _ended(self, room_id: str) -> None:
        storage = self._storage.pop(room_id, None)
        if self.on_end is not None and storage is not None:
            self.on_end(room_id, storage)

    def close(self, now: float) -> None:
        """The server stops: every recording ends."""
        for room_id in list(self.rooms):
            self.stop(room_id, now)

    def recording(self, room_id: str) -> bool:
        return room_id in self.rooms

    def watches(self, publication: Publication) -> bool:
        """Whether :meth:`rtp` wants ``publication``'s packets as they arrive (its room records)."""
        return publication.owner.room_id in self.rooms

    def storage(self, room_id: str) -> RoomStorage | None:
        """Where ``room_id``'s recording is written, while it records."""
        return self._storage.get(room_id)

    def storages(self) -> list[RoomStorage]:
        """Where the recordings in progress are written (the daemon marks them alive, see docs/recording.md)."""
        return list(self._storage.values())

    def on_event(self, event: object, now: float) -> None:
        """Joins and leaves of recorded rooms; the room's recording ends when its last participant leaves."""
        if isinstance(event, ParticipantJoined):
            room = self.rooms.get(event.room_id)
            if room is not None:
                self._join(room, event.participant_id, now)
        elif isinstance(event, ParticipantLeft):
            room = self.rooms.get(event.room_id)
            if room is None:
                return
            self._leave(room, event.participant_id, now)
            if not self.core.rooms.get(event.room_id):
                self.stop(event.room_id, now)

    def _join(self, room: RecordedRoom, participant_id: str, now: float) -> None:
        if participant_id in room.members:
            return
        count = room.joins[participant_id] = room.joins.get(participant_id, 0) + 1
        recorded = _safe(participant_id) + (f".{count}" if count > 1 else "")
        room.members[participant_id] = recorded
        room.logger.add_participant(recorded, now, name=self.names(participant_id))

    def _leave(self, room: RecordedRoom, participant_id: str, now: float) -> None:
        recorded = room.members.pop(participant_id, None)
        if recorded is None:
            return
        for key in [k for k in room.tracks if k[0] == participant_id]:
            track_id = room.tracks.pop(key)
            room.publications.pop(track_id, None)
            for ssrc in [s for s, t in room.ssrcs.items() if t == track_id]:
                del room.ssrcs[ssrc]
        room.logger.remove_participant(recorded, now)

    # -- the core's tap ----------------------------------------------------------------

    def rtp(self, publication: Publication, event: pe.RtpReceived, now: float) -> None:
        """A publisher's packet as received (the core calls this for every one)."""
        room = self.rooms.get(publication.owner.room_id)
        if room is None:
            return
        owner = publication.owner.id
        track_id = room.tracks.get((owner, publication.mid))
        packet = event.packet
        if track_id is None:
            track_id = self._add_track(room, publication, packet.payload_type, now)
            if track_id is None:
                return
        room.ssrcs[packet.ssrc] = track_id
        try:
            room.logger.rtp(track_id, packet.data, now)
        except OSError:
            self._failed(room, now)
            return
        if room.next_poll is not None and now >= room.next_poll:
            self._ask_keyframes(room, now)

    def rtcp(self, participant: Participant, packets, now: float) -> None:
        """A decrypted RTCP compound from ``participant``: its sender reports go to their tracks."""
        room = self.rooms.get(participant.room_id)
        if room is None:
            return
        for packet in packets:
            if isinstance(packet, SenderReport):
                track_id = room.ssrcs.get(packet.ssrc)
                if track_id is not None:
                    try:
                        room.logger.sender_report(track_id, packet, now)
                    except OSError:
                        self._failed(room, now)
                        return

    def _add_track(self, room: RecordedRoom, publication: Publication, payload_type: int, now: float) -> str | None:
        owner = publication.owner
        if owner.id not in room.members:
            self._join(room, owner.id, now)
        codec = _codec(owner, publication.mid, payload_type)
        if codec is None:
            return None  # a payload type the answer did not agree: not media of this track
        track_id = f"{room.members[owner.id]}-{_safe(publication.mid)}"
        room.logger.add_track(track_id, room.members[owner.id], codec, now)
        room.tracks[(owner.id, publication.mid)] = track_id
        room.publications[track_id] = publication
        room.next_poll = room.logger.next_deadline()
        return track_id

    def _ask_keyframes(self, room: RecordedRoom, now: float) -> None:
        logger = room.logger
        while (track_id := logger.poll_keyframe_request(now)) is not None:
            publication = room.publications.get(track_id)
            if publication is not None:
                self.core.request_keyframe(publication, now)
        room.next_poll = logger.next_deadline()

    def _failed(self, room: RecordedRoom, now: float) -> None:
        """A journal write failed (the disk is full or gone): this room stops recording, the server goes on."""
        self.errors += 1
        self.rooms.pop(room.room_id, None)
        try:
            room.logger.close(now)
        except (OSError, NetcoreError):
            pass
        self._ended(room.room_id)


def _codec(participant: Participant, mid: str, payload_type: int) -> Codec | None:
    """The codec the participant's offer/answer agreed for ``payload_type`` on ``mid``, as the manifest keeps it."""
    for media in participant.session.media:
        if media.mid != mid:
            continue
        for c in media.recv_codecs:
            if c.payload_type == payload_type and c.name.upper() not in ("RTX", "RED", "ULPFEC"):
                params = {k: v or "" for k, v in c.parameters}
                return Codec(c.name, c.clock_rate, payload_type, c.channels or 1, params)
    return None
