"""A room's journal directory read back: the manifest and every track's records.

Damage inside a segment is not an error (the records around it are kept
and the damage counted, see :func:`netcore.record.journal.parse_segment`);
a torn tail is expected after a crash.  What is an error, with one sentence
saying what: a directory that is not there or has no manifest
(:class:`JournalMissingError`), a manifest or segment header that is not
ours (:class:`~netcore.record.journal.JournalParseError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from netcore.errors import UsageError
from netcore.record.journal import (SEGMENT_HEADER_SIZE, JournalParseError, RecordKind, SenderInfo, parse_segment,
                                    segment_header)
from netcore.record.manifest import MANIFEST_NAME, Manifest
from netcore.record.writer import segment_paths

__all__ = ["JournalMissingError", "TrackRecords", "RoomJournal", "read_room", "read_track"]


class JournalMissingError(UsageError):
    """The journal directory, its manifest or a track's directory does not exist."""


@dataclass(slots=True)
class TrackRecords:
    """One track's records in journal (arrival) order."""

    packets: list[tuple[float, bytes]] = field(default_factory=list)  # (arrival, RTP packet)
    reports: list[tuple[float, SenderInfo]] = field(default_factory=list)  # (arrival, sender info)
    order: list[tuple[int, int]] = field(default_factory=list)  # (kind, index into its list), as journalled
    segments: int = 0
    damaged: int = 0
    dropped_bytes: int = 0
    torn_tail: bool = False


@dataclass(slots=True)
class RoomJournal:
    directory: Path
    manifest: Manifest
    tracks: dict[str, TrackRecords]


def read_track(track_dir: Path) -> TrackRecords:
    if not track_dir.is_dir():
        raise JournalMissingError(f"the journal of track {track_dir.name!r} is missing ({track_dir})")
    out = TrackRecords()
    paths = segment_paths(track_dir)
    for path in paths:
        data = path.read_bytes()
        if path is paths[-1] and _being_created(path, data):
            out.torn_tail = True  # the writer stopped between creating its next segment and writing its header
            continue
        try:
            contents = parse_segment(data)
        except JournalParseError as exc:
            raise JournalParseError(f"{path} is not a readable journal segment: {exc}") from None
        out.segments += 1
        out.damaged += contents.damaged
        out.dropped_bytes += contents.dropped_bytes
        out.torn_tail = out.torn_tail or contents.torn_tail
        for record in contents.records:
            if record.kind == RecordKind.RTP:
                out.order.append((RecordKind.RTP, len(out.packets)))
                out.packets.append((record.arrival, record.body))
            elif record.kind == RecordKind.SENDER_REPORT:
                try:
                    info = SenderInfo.parse(record.body)
                except JournalParseError:
                    out.damaged += 1
                    continue
                out.order.append((RecordKind.SENDER_REPORT, len(out.reports)))
                out.reports.append((record.arrival, info))
    return out


def _being_created(path: Path, data: bytes) -> bool:
    """A segment shorter than its header whose bytes are the start of the header it was to have."""
    if len(data) >= SEGMENT_HEADER_SIZE or not path.stem.isdigit():
        return False
    return segment_header(int(path.stem))[:len(data)] == data


def read_room(directory: Path | str) -> RoomJournal:
    """The manifest and every track of the journal directory ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise JournalMissingError(f"no journal directory at {directory}")
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise JournalMissingError(f"{directory} has no {MANIFEST_NAME}: it is not a recorded room")
    try:
        manifest = Manifest.from_json(manifest_path.read_bytes())
    except JournalParseError as exc:
        raise JournalParseError(f"{manifest_path} is corrupt: {exc}") from None
    tracks = {t.track_id: read_track(directory / t.track_id) for t in manifest.tracks}
    return RoomJournal(directory, manifest, tracks)
