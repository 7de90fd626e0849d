"""``netcore-record``: a recorded room's journal directory to playable files.

    netcore-record JOURNAL_DIR [--out DIR] [--composite] [--quiet]

One WebM (VP8 + Opus) or Matroska (H.264) file per participant, without
re-encoding, and a JSON sidecar, in ``--out`` (default: the current
directory); ``--composite`` adds one file of the whole call.  A progress
bar on stderr for long rooms.  Exit status 0 on success, 1 with one line
on stderr for a journal that is missing or corrupt, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from netcore.errors import NetcoreError
from netcore.record.creator import create_recording

__all__ = ["main", "ProgressBar"]


class ProgressBar:
    """``[#####.....]  45%  4:30 / 10:00 of call`` on one line, redrawn at most ten times a second."""

    def __init__(self, stream=sys.stderr, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self._last = 0.0
        self.drawn = 0

    def __call__(self, done: float, total: float) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        share = 1.0 if total <= 0 else max(0.0, min(1.0, done / total))
        filled = int(share * self.width)
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {share * 100:3.0f}%  "
                          f"{_clock(done)} / {_clock(total)} of call")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()
        self.drawn += 1


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netcore-record", description=__doc__.split("\n\n")[0])
    parser.add_argument("journal", type=Path, help="a recorded room's journal directory")
    parser.add_argument("--out", type=Path, default=Path("."), help="where the files go (a directory)")
    parser.add_argument("--composite", action="store_true", help="also one file of the whole call (re-encoded)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    progress = None if args.quiet else ProgressBar()
    try:
        recording = create_recording(args.journal, args.out, progress=progress, composite=args.composite)
    except (NetcoreError, OSError) as exc:
        print(f"netcore-record: {exc}", file=sys.stderr)
        return 1
    for f in recording.files:
        print(f.location)
    print(recording.sidecar_location)
    return 0


if __name__ == "__main__":
    sys.exit(main())
