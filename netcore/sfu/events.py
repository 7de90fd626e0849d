"""Events of the call server core (frozen dataclasses, past tense, under :class:`SfuEvent`)."""

from __future__ import annotations

from dataclasses import dataclass

from netcore.net import Event

__all__ = ["SfuEvent", "ParticipantJoined", "ParticipantLeft", "TrackPublished", "SlotsChanged",
           "ActiveSpeakerChanged", "KeyFrameRequested", "LayerSwitched", "Slot", "TranscodeStarted",
           "TranscodeStopped"]


@dataclass(frozen=True, slots=True)
class SfuEvent(Event):
    """Base of every event of :class:`~netcore.sfu.core.SfuCore`."""


@dataclass(frozen=True, slots=True)
class Slot:
    """One receive m-section of a subscriber and what it carries now (``publisher`` None: nothing)."""

    mid: str
    kind: str
    publisher: str | None = None
    track: str | None = None  # the publisher's mid
    # the heights of that track's layers (simulcast layers, renditions) known from their key frames, lowest
    # first: what a viewer may cap the track at (room.quality), the rungs of a watch page's quality menu
    heights: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ParticipantJoined(SfuEvent):
    room_id: str
    participant_id: str


@dataclass(frozen=True, slots=True)
class ParticipantLeft(SfuEvent):
    """A participant left (``reason``: left, failed, closed); totals for its log line."""

    room_id: str
    participant_id: str
    reason: str
    duration: float
    packets_received: int
    packets_forwarded: int
    bytes_forwarded: int


@dataclass(frozen=True, slots=True)
class TrackPublished(SfuEvent):
    room_id: str
    participant_id: str
    mid: str
    kind: str


@dataclass(frozen=True, slots=True)
class SlotsChanged(SfuEvent):
    """What ``participant_id``'s receive sections now carry: tell its client (``room.slots``)."""

    room_id: str
    participant_id: str
    slots: tuple[Slot, ...]


@dataclass(frozen=True, slots=True)
class ActiveSpeakerChanged(SfuEvent):
    room_id: str
    participant_id: str | None


@dataclass(frozen=True, slots=True)
class KeyFrameRequested(SfuEvent):
    """The server asked ``participant_id`` for a key frame of its track ``mid`` (PLI upstream, after
    the arbiter): ``reason`` is "subscriber" (a subscriber's request or a new slot), "held" (one
    held back by the interval), "retry" (a slot still waiting after KEYFRAME_RETRY) or "recorder" (a
    recorded track's start, or too long without one)."""

    room_id: str
    participant_id: str
    mid: str
    reason: str


@dataclass(frozen=True, slots=True)
class LayerSwitched(SfuEvent):
    """The allocator moved ``participant_id``'s slot for ``publisher``'s track ``mid`` from the
    simulcast layer ``from_rid`` to ``to_rid`` (None: none yet / none); the switch itself happens at
    the new layer's key frame."""

    room_id: str
    participant_id: str
    publisher: str
    mid: str
    from_rid: str | None
    to_rid: str | None


@dataclass(frozen=True, slots=True)
class TranscodeStarted(SfuEvent):
    """Worker ``worker`` is to make ``renditions`` (netcore.transcode.ladder.Rendition) of ``publisher``'s
    track ``mid``: tell it, and it joins the room with :meth:`SfuCore.join` ``job=job_id``."""

    room_id: str
    job_id: str
    publisher: str
    mid: str
    worker: str
    source_codec: str
    renditions: tuple


@dataclass(frozen=True, slots=True)
class TranscodeStopped(SfuEvent):
    """The job ended (``reason``: unneeded, source_gone, worker_gone): its worker, if alive, stops it."""

    room_id: str
    job_id: str
    worker: str
    reason: str
