"""Time-based jitter buffer for audio packets and video frames.

* ``buffer`` -- :class:`JitterBuffer`, the sans-IO core (insert, pop,
  next_deadline, poll_event) with adaptive delay and hard memory bounds;
* ``nack`` -- :class:`NackGenerator`, missing sequence numbers, retries and
  giving up;
* ``events`` -- :class:`JitterEvent` and what derives from it.
"""

from netcore.jitter.buffer import Frame, JitterBuffer, JitterConfig, JitterMetrics
from netcore.jitter.events import JitterEvent, KeyFrameRequested, NackRequested
from netcore.jitter.nack import NackConfig, NackGenerator

__all__ = [
    "Frame",
    "JitterBuffer",
    "JitterConfig",
    "JitterMetrics",
    "JitterEvent",
    "KeyFrameRequested",
    "NackRequested",
    "NackConfig",
    "NackGenerator",
]
