"""Where finished recordings go: a directory by default, behind a small interface.

A :class:`Store` takes a finished local file under a name and returns its
location (a path here; an object store would return its URL).  Names are
``ROOM-YYYYMMDDTHHMMSSZ-PARTICIPANT.webm`` (or ``.mkv``) for the files and
``ROOM-YYYYMMDDTHHMMSSZ.json`` for the sidecar that lists them, so a
room's recordings sort by time and never collide across rooms.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Protocol

from netcore.errors import UsageError

__all__ = ["Store", "DirectoryStore", "recording_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def recording_name(room: str, unix_time: float, participant: str | None = None, suffix: str = ".json") -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(unix_time))
    parts = [_UNSAFE.sub("_", room), stamp] + ([_UNSAFE.sub("_", participant)] if participant else [])
    return "-".join(parts) + suffix


class Store(Protocol):
    def put(self, source: Path, name: str) -> str:
        """Keep ``source`` (a finished file) as ``name``; return where it now is."""
        ...


class DirectoryStore:
    """Files in one directory; a file appears under its name whole or not at all (rename)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, source: Path, name: str) -> str:
        if "/" in name or name.startswith("."):
            raise UsageError(f"{name!r} is not a plain file name")
        target = self.root / name
        tmp = self.root / f".{name}.part"
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        return str(target)
