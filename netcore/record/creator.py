"""The file creator: a room's journal directory to one file per participant, and a sidecar.

Steps (each in its module): read the journals (:mod:`netcore.record.reader`),
put every track on the room's timeline (:mod:`netcore.record.timeline`),
turn packets back into coded frames (:mod:`netcore.record.frames`), write
them without re-encoding (:mod:`netcore.record.mux`), hand the files and a
JSON sidecar to a :class:`~netcore.record.store.Store`.

Room time 0 is the start of the recording (the manifest's ``started_at``);
every participant's file keeps room time, so someone who joined ten
seconds in starts ten seconds into their file and muted stretches stay
empty: the files of one room play in step.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from netcore.record.frames import TrackFrames, track_frames, unwrapped_times
from netcore.record.journal import JournalParseError
from netcore.record.manifest import Manifest, TrackEntry
from netcore.record.mux import MuxError, MuxTrack, container_for, write_file
from netcore.record.reader import RoomJournal, read_room
from netcore.record.store import DirectoryStore, Store, recording_name
from netcore.record.timeline import TrackClock, arrival_clock, fit_track, fit_wallclock
from netcore.rtp.errors import RtpParseError
from netcore.rtp.opus import opus_duration
from netcore.rtp.packet import RtpPacket
from netcore.rtp.reports import ntp_to_seconds

__all__ = ["Recording", "ParticipantFile", "create_recording", "track_clocks"]


@dataclass(slots=True)
class ParticipantFile:
    participant: str
    location: str
    name: str
    start: float  # room time of its first frame
    end: float
    tracks: list[dict] = field(default_factory=list)
    sha256: str = ""


@dataclass(slots=True)
class Recording:
    room: str
    started_unix: float
    duration: float
    files: list[ParticipantFile]
    sidecar: dict
    sidecar_location: str = ""


def track_clocks(journal: RoomJournal) -> tuple[dict[str, TrackClock], dict[str, list[int]]]:
    """Each track's clock, and its packets' unwrapped RTP timestamps."""
    manifest = journal.manifest
    origin = manifest.started_at
    unwrapped: dict[str, tuple[list[int], list[int]]] = {
        t.track_id: unwrapped_times(journal.tracks[t.track_id]) for t in manifest.tracks}
    clocks: dict[str, TrackClock] = {}
    for participant in manifest.participants:
        tracks = [t for t in manifest.tracks if t.participant == participant.participant]
        pairs = [(ntp_to_seconds(info.ntp_timestamp), arrival)
                 for t in tracks for arrival, info in journal.tracks[t.track_id].reports]
        wallclock = fit_wallclock(pairs) if pairs else None
        for t in tracks:
            records = journal.tracks[t.track_id]
            packet_ts, report_ts = unwrapped[t.track_id]
            if wallclock is not None and records.reports:
                reports = list(zip(report_ts, (info for _, info in records.reports)))
                clocks[t.track_id] = fit_track(reports, t.codec.clock_rate, wallclock, origin)
            elif records.packets:
                pairs_a = list(zip(packet_ts, (arrival for arrival, _ in records.packets)))
                clocks[t.track_id] = arrival_clock(pairs_a, t.codec.clock_rate, origin,
                                                   _capture_time(t, records.packets[0][1]))
    return clocks, {k: v[0] for k, v in unwrapped.items()}


def _capture_time(entry: TrackEntry, first_packet: bytes) -> float:
    """Seconds of media an audio packet holds (it is sent once they are captured); 0 for video."""
    if entry.kind != "audio" or entry.codec.name.upper() != "OPUS":
        return 0.0
    try:
        return opus_duration(RtpPacket.parse(first_packet).payload) / entry.codec.clock_rate
    except RtpParseError:
        return 0.0


def _start_at_zero(per_participant: dict[str, list[tuple[TrackEntry, TrackFrames]]]) -> None:
    """Shift the room's timeline if a frame was placed before its start (a sender's clock
    fitted a little early): files cannot start before zero, and dropping the frame could
    drop the first key frame."""
    first = min((f.time for tracks in per_participant.values() for _, fr in tracks for f in fr.frames[:1]),
                default=0.0)
    if first < 0:
        for tracks in per_participant.values():
            for _, fr in tracks:
                for f in fr.frames:
                    f.time -= first


def _track_summary(entry: TrackEntry, frames: TrackFrames, clock: TrackClock | None) -> dict:
    times = [f.time for f in frames.frames]
    return {
        "track_id": entry.track_id, "kind": entry.kind, "codec": entry.codec.name,
        "clock_rate": entry.codec.clock_rate, "parameters": entry.codec.parameters,
        "timeline": clock.source if clock else None,
        "frames": len(frames.frames), "frames_skipped": frames.frames_skipped,
        "packets_lost": frames.packets_lost, "packets_duplicate": frames.packets_duplicate,
        "audio_dropped": frames.audio_dropped,
        "start": min(times) if times else None, "end": max(times) if times else None,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def create_recording(journal_dir: Path | str, store: Store | Path | str, *,
                     progress: Callable[[float, float], None] | None = None,
                     composite: bool = False) -> Recording:
    """Files for the room journalled in ``journal_dir``, put in ``store``.

    ``progress(done, total)`` is called with seconds of media written so far
    (every participant's file counts the room's duration; so does the
    composite). ``composite``: also one file of the whole call, re-encoded
    (:mod:`netcore.record.composite`).
    Raises :class:`~netcore.record.reader.JournalMissingError` or
    :class:`~netcore.record.journal.JournalParseError` for a journal that is
    not there or not readable.
    """
    if not hasattr(store, "put"):
        store = DirectoryStore(store)  # type: ignore[arg-type]
    journal = read_room(journal_dir)
    manifest: Manifest = journal.manifest
    clocks, _ = track_clocks(journal)
    per_participant: dict[str, list[tuple[TrackEntry, TrackFrames]]] = {}
    for entry in manifest.tracks:
        clock = clocks.get(entry.track_id)
        frames = (track_frames(journal.tracks[entry.track_id], entry.codec, clock) if clock is not None
                  else TrackFrames())
        per_participant.setdefault(entry.participant, []).append((entry, frames))
    _start_at_zero(per_participant)
    ends = [f.time + f.duration for tracks in per_participant.values() for _, fr in tracks for f in fr.frames]
    duration = max(ends, default=0.0)
    started_unix = manifest.started_at + manifest.wallclock_offset
    files: list[ParticipantFile] = []
    parts = len(per_participant) + (1 if composite else 0)
    total = duration * max(1, parts)
    with tempfile.TemporaryDirectory(prefix="netcore-record-") as work:
        for index, (participant, tracks) in enumerate(per_participant.items()):
            mux_tracks = [MuxTrack(e.track_id, e.codec, fr.frames) for e, fr in tracks if fr.frames]
            if not mux_tracks:
                continue
            _, suffix = container_for([t.codec for t in mux_tracks])
            name = recording_name(manifest.room, started_unix, participant, suffix)
            local = Path(work) / name

            def report(time: float, base: float = index * duration) -> None:
                if progress is not None:
                    progress(base + min(time, duration), total)

            try:
                write_file(local, mux_tracks, report)
            except MuxError as exc:
                raise JournalParseError(f"participant {participant!r} cannot be written: {exc}") from None
            times = [f.time for t in mux_tracks for f in t.frames]
            files.append(ParticipantFile(
                participant, store.put(local, name), name, min(times),
                max(f.time + f.duration for t in mux_tracks for f in t.frames),
                [_track_summary(e, fr, clocks.get(e.track_id)) for e, fr in tracks], _sha256(local)))
        composite_file = None
        if composite:
            from netcore.record.composite import write_composite

            name = recording_name(manifest.room, started_unix, "composite", ".webm")
            local = Path(work) / name

            def report_composite(time: float) -> None:
                if progress is not None:
                    progress(len(per_participant) * duration + min(time, duration), total)

            write_composite(local, [[MuxTrack(e.track_id, e.codec, fr.frames) for e, fr in tracks if fr.frames]
                                    for tracks in per_participant.values()], duration, report_composite)
            composite_file = {"name": name, "location": store.put(local, name), "sha256": _sha256(local)}
        sidecar = {
            "format": "netcore-recording-files/1",
            "room": manifest.room,
            "started": started_unix,
            "duration": duration,
            "participants": [{
                "participant": p.participant, "name": p.name,
                "joined_at": p.joined_at - manifest.started_at,
                "left_at": None if p.left_at is None else p.left_at - manifest.started_at,
            } for p in manifest.participants],
            "files": [{
                "participant": f.participant, "name": f.name, "location": f.location, "sha256": f.sha256,
                "start": f.start, "end": f.end, "tracks": f.tracks,
            } for f in files],
            "composite": composite_file,
        }
        sidecar_name = recording_name(manifest.room, started_unix)
        sidecar_path = Path(work) / sidecar_name
        sidecar_path.write_text(json.dumps(sidecar, indent=1, sort_keys=True))
        location = store.put(sidecar_path, sidecar_name)
    if progress is not None:
        progress(total, total)
    return Recording(manifest.room, started_unix, duration, files, sidecar, location)
