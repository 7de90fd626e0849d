"""Recordings for the people who took part: what ``recording.ready`` says, kept per user, and the files.

A recording worker's ``recording.ready`` (docs/recording.md) is read into
one bounded entry (:func:`ready_fields`): the room, the sidecar's
location, when it started and how long it is, and per participant file its
name, location, user, start and end in room time and its tracks' kinds and
codecs (plus the composite, if any).  Signaling keeps that entry for every
user who took part and lists it to them (``recording.list``) with, per file,
a URL on its own port, ``/v1/recordings/NAME?access=TOKEN``: the token is a
short-lived HMAC for that user and that file name only
(:func:`~.credentials.issue_file_token`), so the page's ``<video>`` loads it
from ``'self'`` without a cookie and the URL opens nothing else.

Serving (:func:`file_response`) is for a name the user's recordings list,
whose location resolves (symbolic links and ``..`` followed) to a file
inside ``recordings_dir``; anything else is 404, whoever asks.  ``Range``
(RFC 9110 section 14) gives 206 with ``Content-Range`` so that a player can
seek, at most :data:`MAX_CHUNK` bytes per answer (players ask again for
the rest); a whole file without ``Range`` only up to :data:`MAX_WHOLE`.
"""

from __future__ import annotations

import math
import re
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable

from websockets.datastructures import Headers
from websockets.http11 import Response

from .credentials import issue_file_token

__all__ = ["PREFIX", "MAX_CHUNK", "MAX_WHOLE", "ready_fields", "recording_entry", "entry_files", "with_urls",
           "parse_range", "servable_path", "file_response", "not_found"]

PREFIX = "/v1/recordings/"
MAX_CHUNK = 2 * 1024 * 1024  # bytes per 206 answer: memory per request stays bounded
MAX_WHOLE = 64 * 1024 * 1024  # a 200 with the whole file only up to this; bigger ones need Range
MAX_FILES = 100  # per recording, from the notification
MAX_TRACKS = 8
CONTENT_TYPES = {".webm": "video/webm", ".mkv": "video/x-matroska"}
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}")  # the store's file names (recording_name)
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _text(value: Any, limit: int = 1000) -> str:
    return str(value)[:limit]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _file(item: Any) -> dict | None:
    """One file of a notification, its known fields only; None if it has no usable name."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not _NAME.fullmatch(item["name"]):
        return None
    out = {"participant": _text(item.get("participant", ""), 200), "name": item["name"],
           "location": _text(item.get("location", ""))}
    if isinstance(item.get("user"), str):
        out["user"] = _text(item["user"], 64)
    for key in ("start", "end"):
        if (value := _number(item.get(key))) is not None:
            out[key] = value
    tracks = item.get("tracks")
    if isinstance(tracks, list):
        out["tracks"] = [{"kind": _text(t.get("kind", ""), 16), "codec": _text(t.get("codec", ""), 32)}
                         for t in tracks[:MAX_TRACKS] if isinstance(t, dict)]
    return out


def ready_fields(payload: dict) -> tuple[str, str, tuple[str, ...], dict | None]:
    """room_id, location, users and the extra fields (files, started, duration, composite) of a
    recording.ready from a service link (KeyError, TypeError for a bad one)."""
    users = tuple(str(u) for u in payload.get("users") or ())[:1000]
    extra: dict[str, Any] = {}
    if payload.get("files"):
        extra["files"] = [f for f in map(_file, list(payload["files"])[:MAX_FILES]) if f is not None]
    for key in ("started", "duration"):
        if (value := _number(payload.get(key))) is not None:
            extra[key] = value
    if "composite" in payload:
        composite = _file(payload["composite"])
        extra["composite"] = None if composite is None else {k: composite[k] for k in ("name", "location")}
    return str(payload["room_id"]), str(payload["location"]), users, extra or None


def recording_entry(room_id: str, location: str, extra: dict | None, now_unix: float) -> dict:
    """What is kept per user and listed: the notification's fields, ``started`` = now when it has none."""
    extra = extra or {}
    return {"room_id": room_id, "location": location, "started": extra.get("started", now_unix),
            "duration": extra.get("duration"), "files": list(extra.get("files", [])),
            "composite": extra.get("composite")}


def entry_files(entry: dict) -> list[tuple[str, str]]:
    """(name, location) of every file of an entry the user may fetch: participants' and the composite."""
    files = [(f["name"], f["location"]) for f in entry["files"]]
    if entry.get("composite"):
        files.append((entry["composite"]["name"], entry["composite"]["location"]))
    return files


def with_urls(recordings: list[dict], user: str, secret: bytes, expiry: int,
              servable: Callable[[str], bool]) -> list[dict]:
    """The entries with a ``url`` on every file and the composite (None when its location is not
    under the served directory, or no directory is served)."""
    def url(item: dict) -> dict:
        if not servable(item.get("location", "")):
            return dict(item, url=None)
        token = issue_file_token(secret, user, item["name"], expiry)
        return dict(item, url=f"{PREFIX}{item['name']}?access={token}")

    return [dict(r, files=[url(f) for f in r.get("files", [])],
                 composite=url(r["composite"]) if r.get("composite") else None) for r in recordings]


def servable_path(root: str | None, location: str) -> Path | None:
    """``location`` resolved, if it is a media file inside ``root`` (resolved too); else None."""
    if not root or not location or location.startswith(("http:", "https:")):
        return None
    try:
        base = Path(root).resolve()
        path = Path(location).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if path.suffix not in CONTENT_TYPES or not path.is_relative_to(base) or path == base:
        return None
    return path


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """The one byte range ``header`` asks for, as (first, last) inclusive, clipped to the file and to
    :data:`MAX_CHUNK`; None: no usable Range (several ranges, another unit, malformed: the whole
    file, RFC 9110 section 14.2 lets a server ignore it); ``"unsatisfiable"``: 416."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or not (match.group(1) or match.group(2)):
        return None
    if match.group(1):
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else size - 1
        if match.group(2) and last < first:
            return None  # invalid (section 14.1.1): ignored
    else:  # a suffix: the last N bytes (section 14.1.2)
        suffix = int(match.group(2))
        if suffix == 0:
            return "unsatisfiable"
        first, last = max(0, size - suffix), size - 1
    if first >= size:
        return "unsatisfiable"
    return first, min(last, size - 1, first + MAX_CHUNK - 1)


def _headers(content_type: str, length: int, extra: list[tuple[str, str]]) -> Headers:
    return Headers([
        ("Content-Type", content_type), ("Content-Length", str(length)), ("Accept-Ranges", "bytes"),
        ("Cache-Control", "private, no-cache"), ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy", "default-src 'none'; sandbox"), *extra, ("Connection", "close"),
    ])


def not_found() -> Response:
    body = b"not found\n"
    headers = Headers([("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                       ("Connection", "close")])
    return Response(HTTPStatus.NOT_FOUND.value, HTTPStatus.NOT_FOUND.phrase, headers, body)


def file_response(path: Path, range_header: str | None, method: str) -> Response:
    """The answer for a file already found servable: 200, 206 or 416 (blocking: run it off the loop)."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            wanted = parse_range(range_header, size)
            if wanted == "unsatisfiable":
                status, body = HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, b""
                headers = _headers("text/plain", 0, [("Content-Range", f"bytes */{size}")])
                return Response(status.value, status.phrase, headers, body)
            if wanted is None:
                if size > MAX_WHOLE:
                    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
                    body = b"ask for it in parts (Range)\n"
                    return Response(status.value, status.phrase, _headers("text/plain", len(body), []), body)
                first, last, status, extra = 0, size - 1, HTTPStatus.OK, []
            else:
                first, last = wanted
                status, extra = HTTPStatus.PARTIAL_CONTENT, [("Content-Range", f"bytes {first}-{last}/{size}")]
            length = max(0, last - first + 1)
            body = b""
            if method != "HEAD":
                fh.seek(first)
                body = fh.read(length)
    except OSError:
        return not_found()
    return Response(status.value, status.phrase, _headers(CONTENT_TYPES[path.suffix], length, extra), body)
