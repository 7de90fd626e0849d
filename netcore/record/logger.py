"""The recorder's logger: what a call server receives, appended to journals.

The call server (or any receiver of media) hands the logger, per recorded
track, the RTP packets it received (after SRTP, before rewriting) with
their arrival times, and the publisher's RTCP sender reports::

    logger = RoomLogger("room-1", DirectoryStorage(path), now=loop.time(), wallclock_offset=time.time() - loop.time())
    logger.add_participant("alice", now)
    logger.add_track("alice-video", "alice", Codec("VP8", 90000, 96), now)
    logger.rtp("alice-video", packet_bytes, arrival)           # every received packet
    logger.sender_report("alice-video", sender_report, arrival) # every SR of that SSRC
    while (track_id := logger.poll_keyframe_request(now)) is not None: ...   # send a PLI
    logger.remove_participant("alice", now); logger.close(now)

The logger itself does no I/O and reads no clock: records go to the
storage's per-track sink (:class:`~netcore.record.writer.DirectoryStorage`
writes files; a test may keep them in memory) and the manifest is handed
over whole at every change.  Key frame requests come from a
:class:`~netcore.record.keyframes.KeyFramePolicy` per video track.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from netcore.errors import UsageError
from netcore.record.journal import SenderInfo, encode_rtp, encode_sender_report
from netcore.record.keyframes import KeyFramePolicy
from netcore.record.manifest import Codec, Manifest, ParticipantEntry, TrackEntry
from netcore.rtp.h264 import h264_is_keyframe
from netcore.rtp.vp8 import vp8_is_keyframe

__all__ = ["TrackSink", "RoomStorage", "RoomLogger", "LoggerStats"]


class TrackSink(Protocol):
    def append(self, record: bytes) -> None: ...

    def close(self) -> None: ...


class RoomStorage(Protocol):
    def open_track(self, track_id: str) -> TrackSink: ...

    def write_manifest(self, data: bytes) -> None: ...


@dataclass(slots=True)
class LoggerStats:
    rtp_records: int = 0
    sender_reports: int = 0
    unknown_track: int = 0  # packets for a track not (or no longer) recorded
    short_packets: int = 0  # too short to be RTP: not recorded
    keyframe_requests: int = 0


_KEYFRAME_TESTS = {"VP8": vp8_is_keyframe, "H264": h264_is_keyframe}


class _Track:
    __slots__ = ("entry", "sink", "policy", "is_keyframe")

    def __init__(self, entry: TrackEntry, sink: TrackSink, policy: KeyFramePolicy | None) -> None:
        self.entry = entry
        self.sink = sink
        self.policy = policy
        self.is_keyframe = _KEYFRAME_TESTS.get(entry.codec.name.upper())


def _payload(packet: bytes) -> bytes:
    """The payload of an RTP packet (RFC 3550 section 5.1), or b"" when malformed."""
    if len(packet) < 12:
        return b""
    pos = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        if len(packet) < pos + 4:
            return b""
        pos += 4 + 4 * int.from_bytes(packet[pos + 2:pos + 4], "big")
    end = len(packet) - (packet[-1] if packet[0] & 0x20 else 0)
    return packet[pos:end] if pos < end else b""


class RoomLogger:
    """Journals of one recorded room (see the module docstring)."""

    def __init__(self, room: str, storage: RoomStorage, *, now: float, wallclock_offset: float = 0.0,
                 keyframe_interval: float = 5.0, keyframe_retry: float = 1.0) -> None:
        self.storage = storage
        self.manifest = Manifest(room, now, wallclock_offset)
        self.stats = LoggerStats()
        self.keyframe_interval = keyframe_interval
        self.keyframe_retry = keyframe_retry
        self._tracks: dict[str, _Track] = {}
        self._closed = False
        self._save()

    def _save(self) -> None:
        self.storage.write_manifest(self.manifest.to_json())

    # -- membership ------------------------------------------------------------------

    def add_participant(self, participant: str, now: float, *, name: str = "") -> None:
        if self.manifest.participant(participant) is not None:
            raise UsageError(f"participant {participant!r} is already recorded")
        self.manifest.participants.append(ParticipantEntry(participant, now, name=name))
        self._save()

    def remove_participant(self, participant: str, now: float) -> None:
        """The participant left: its tracks end, its leave time goes into the manifest."""
        entry = self.manifest.participant(participant)
        if entry is None:
            raise UsageError(f"participant {participant!r} is not recorded")
        for track_id in [t for t, track in self._tracks.items() if track.entry.participant == participant]:
            self._end_track(track_id, now)
        entry.left_at = now
        self._save()

    def add_track(self, track_id: str, participant: str, codec: Codec, now: float) -> None:
        """Start recording a track; a video track asks for a key frame at once."""
        if self._closed:
            raise UsageError("the recording is closed")
        if self.manifest.participant(participant) is None:
            raise UsageError(f"participant {participant!r} is not recorded")
        if self.manifest.track(track_id) is not None:
            raise UsageError(f"track {track_id!r} was already recorded in this room")
        entry = TrackEntry(track_id, participant, codec.kind, codec, now)
        policy = None
        if codec.kind == "video":
            policy = KeyFramePolicy(self.keyframe_interval, self.keyframe_retry)
            policy.start(now)
        self._tracks[track_id] = _Track(entry, self.storage.open_track(track_id), policy)
        self.manifest.tracks.append(entry)
        self._save()

    def remove_track(self, track_id: str, now: float) -> None:
        self._end_track(track_id, now)
        self._save()

    def _end_track(self, track_id: str, now: float) -> None:
        track = self._tracks.pop(track_id, None)
        if track is None:
            raise UsageError(f"track {track_id!r} is not being recorded")
        track.entry.ended_at = now
        track.sink.close()

    # -- media -----------------------------------------------------------------------

    def rtp(self, track_id: str, packet: bytes, arrival: float) -> None:
        """An RTP packet of ``track_id`` as received (after SRTP), at ``arrival``."""
        track = self._tracks.get(track_id)
        if track is None:
            self.stats.unknown_track += 1
            return
        if len(packet) < 12:
            self.stats.short_packets += 1
            return
        track.sink.append(encode_rtp(packet, arrival))
        self.stats.rtp_records += 1
        if track.policy is not None and track.is_keyframe is not None:
            track.policy.packet(track.is_keyframe(_payload(packet)), arrival)

    def sender_report(self, track_id: str, report: SenderInfo, arrival: float) -> None:
        """The publisher's sender report for the track's SSRC (an RTCP SR, or its ``SenderInfo``)."""
        track = self._tracks.get(track_id)
        if track is None:
            self.stats.unknown_track += 1
            return
        if not isinstance(report, SenderInfo):
            report = SenderInfo(report.ssrc, report.ntp_timestamp, report.rtp_timestamp,
                                report.packet_count, report.octet_count)
        track.sink.append(encode_sender_report(report, arrival))
        self.stats.sender_reports += 1

    # -- key frames ------------------------------------------------------------------

    def poll_keyframe_request(self, now: float, participant: str | None = None) -> str | None:
        """A track (of ``participant``, or any) whose publisher should be asked for a key frame now."""
        for track_id, track in self._tracks.items():
            if participant is not None and track.entry.participant != participant:
                continue
            if track.policy is not None and track.policy.poll_request(now):
                self.stats.keyframe_requests += 1
                return track_id
        return None

    def next_deadline(self) -> float | None:
        deadlines = [d for t in self._tracks.values() if t.policy is not None
                     if (d := t.policy.next_deadline()) is not None]
        return min(deadlines) if deadlines else None

    # -- end -------------------------------------------------------------------------

    def close(self, now: float) -> None:
        """End every track and the room; the manifest then says the recording is complete."""
        if self._closed:
            return
        for track_id in list(self._tracks):
            self._end_track(track_id, now)
        for entry in self.manifest.participants:
            if entry.left_at is None:
                entry.left_at = now
        self.manifest.ended_at = now
        self._closed = True
        self._save()

    @property
    def tracks(self) -> list[str]:
        return list(self._tracks)
