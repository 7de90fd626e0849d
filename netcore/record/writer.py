"""File I/O of the recorder: a journal directory per room, thin on purpose.

Layout of a room's directory::

    ROOM_DIR/manifest.json
    ROOM_DIR/TRACK_ID/000001.ncj, 000002.ncj, ...   (segments, see netcore.record.journal)

Each record is handed to the kernel with one ``write`` as it comes, so a
recorder killed at any instant leaves every record before the one being
written intact (the torn last one is dropped on reading); ``fsync`` happens
when a segment is closed (rotation, end of track), so a machine that loses
power keeps at least the closed segments.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from netcore.errors import UsageError
from netcore.record.journal import SEGMENT_HEADER_SIZE, segment_header
from netcore.record.manifest import MANIFEST_NAME

__all__ = ["SegmentWriter", "DirectoryStorage", "SEGMENT_SUFFIX", "DEFAULT_SEGMENT_BYTES", "segment_paths"]

SEGMENT_SUFFIX = ".ncj"
DEFAULT_SEGMENT_BYTES = 16 << 20
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def segment_paths(track_dir: Path) -> list[Path]:
    """A track directory's segment files in order."""
    return sorted(p for p in track_dir.iterdir() if p.suffix == SEGMENT_SUFFIX and p.stem.isdigit())


class SegmentWriter:
    """Appends records to one track's directory, starting a new segment past ``max_segment_bytes``."""

    def __init__(self, directory: Path, max_segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        if max_segment_bytes < 1024:
            raise UsageError("segments smaller than 1 KiB make no sense")
        self.directory = directory
        self.max_segment_bytes = max_segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        existing = segment_paths(directory)
        if existing and existing[-1].stat().st_size < SEGMENT_HEADER_SIZE:
            existing.pop().unlink()  # created by a recorder killed before it wrote the header: nothing in it
        # A recorder restarted on the same track goes on after what is there.
        self._index = int(existing[-1].stem) if existing else 0
        self._fd: int | None = None
        self._size = 0
        self.segments = 0
        self.bytes_written = 0

    def _open_next(self) -> None:
        self._close_segment()
        self._index += 1
        path = self.directory / f"{self._index:06d}{SEGMENT_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        header = segment_header(self._index)
        os.write(self._fd, header)
        self._size = len(header)
        self.segments += 1

    def _close_segment(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def append(self, record: bytes) -> None:
        if self._fd is None or self._size + len(record) > self.max_segment_bytes:
            self._open_next()
        os.write(self._fd, record)  # type: ignore[arg-type]
        self._size += len(record)
        self.bytes_written += len(record)

    def close(self) -> None:
        self._close_segment()


class DirectoryStorage:
    """Where a :class:`~netcore.record.logger.RoomLogger` puts a room: one directory."""

    def __init__(self, directory: Path | str, max_segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.directory = Path(directory)
        self.max_segment_bytes = max_segment_bytes
        self.directory.mkdir(parents=True, exist_ok=True)

    def open_track(self, track_id: str) -> SegmentWriter:
        if not _SAFE_NAME.match(track_id):
            raise UsageError(f"track id {track_id!r} is not a safe file name")
        return SegmentWriter(self.directory / track_id, self.max_segment_bytes)

    def write_manifest(self, data: bytes) -> None:
        path = self.directory / MANIFEST_NAME
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
