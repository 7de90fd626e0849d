"""The room manifest: who took part, which tracks, which codecs, when (JSON).

One ``manifest.json`` per recorded room, rewritten whole (write to a
temporary name, then rename) at every change, so a reader sees the old or
the new manifest, never half of one.  Times are the recorder's clock in
seconds (the clock of the journals' arrival times); ``wallclock_offset``
turns them into Unix time (``unix = time + wallclock_offset``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from netcore.record.journal import JournalParseError

__all__ = ["Codec", "TrackEntry", "ParticipantEntry", "Manifest", "MANIFEST_NAME"]

MANIFEST_NAME = "manifest.json"
FORMAT = "netcore-recording/1"


@dataclass(slots=True)
class Codec:
    """A codec as the SDP agreed it (RFC 8866 ``a=rtpmap`` and ``a=fmtp``)."""

    name: str  # "VP8", "H264", "opus"
    clock_rate: int
    payload_type: int
    channels: int = 1
    parameters: dict[str, str] = field(default_factory=dict)  # the a=fmtp parameters

    @property
    def kind(self) -> str:
        return "audio" if self.name.lower() == "opus" else "video"


@dataclass(slots=True)
class TrackEntry:
    track_id: str  # also the name of the track's journal directory
    participant: str
    kind: str  # "audio" or "video"
    codec: Codec
    started_at: float
    ended_at: float | None = None


@dataclass(slots=True)
class ParticipantEntry:
    participant: str
    joined_at: float
    left_at: float | None = None
    name: str = ""


@dataclass(slots=True)
class Manifest:
    room: str
    started_at: float
    wallclock_offset: float = 0.0
    ended_at: float | None = None
    participants: list[ParticipantEntry] = field(default_factory=list)
    tracks: list[TrackEntry] = field(default_factory=list)

    def participant(self, participant: str) -> ParticipantEntry | None:
        return next((p for p in self.participants if p.participant == participant), None)

    def track(self, track_id: str) -> TrackEntry | None:
        return next((t for t in self.tracks if t.track_id == track_id), None)

    def to_json(self) -> bytes:
        data: dict[str, Any] = {"format": FORMAT, **asdict(self)}
        return json.dumps(data, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """Parse a manifest; :class:`JournalParseError` when it is not one."""
        try:
            data = json.loads(raw)
            if data.pop("format") != FORMAT:
                raise JournalParseError("the manifest has an unknown format")
            participants = [ParticipantEntry(**p) for p in data.pop("participants")]
            tracks = []
            for t in data.pop("tracks"):
                codec = Codec(**t.pop("codec"))
                tracks.append(TrackEntry(codec=codec, **t))
            return cls(participants=participants, tracks=tracks, **data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            if isinstance(exc, JournalParseError):
                raise
            raise JournalParseError(f"the manifest is not valid ({exc})") from None
