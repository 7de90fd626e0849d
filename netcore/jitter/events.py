"""What the jitter buffer asks its owner to do (events of the jitter layer).

The buffer never sends RTCP itself: it says which feedback the receiver
should send (a generic NACK, a PLI), and the owner builds and sends it.
"""

from __future__ import annotations

from dataclasses import dataclass

from netcore.net import Event

__all__ = ["JitterEvent", "NackRequested", "KeyFrameRequested"]


@dataclass(frozen=True, slots=True)
class JitterEvent(Event):
    """Base of the jitter buffer's events."""


@dataclass(frozen=True, slots=True)
class NackRequested(JitterEvent):
    """Send a generic NACK for these 16-bit sequence numbers."""

    ssrc: int
    sequence_numbers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class KeyFrameRequested(JitterEvent):
    """Send a PLI: the decoder cannot go on without a key frame."""

    ssrc: int
    reason: str
