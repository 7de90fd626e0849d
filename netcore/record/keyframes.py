"""When a recorder asks a publisher for a key frame, sans-IO.

A recording of a video track can only start at a key frame, and a file can
only go on after a loss the jitter buffer could not repair at the next one.
So the recorder asks for one (the call server sends a PLI to the publisher)

* when recording of the track starts, and
* when the track has gone ``interval`` seconds without one (a publisher
  that codes key frames only on request would otherwise leave a long
  undecodable stretch after a loss the recording could not repair).

Requests are spaced by at least ``retry`` seconds while none comes, so a
publisher that is slow to answer is not flooded (the key frame request
storms that SFUs are known for).  Time only enters as ``now``.
"""

from __future__ import annotations

__all__ = ["KeyFramePolicy"]


class KeyFramePolicy:
    """Key frame requests of one recorded video track (see the module docstring)."""

    def __init__(self, interval: float = 5.0, retry: float = 1.0) -> None:
        if interval <= 0 or retry <= 0:
            raise ValueError("interval and retry must be positive")
        self.interval = interval
        self.retry = retry
        self.requests = 0
        self._started = False
        self._last_keyframe: float | None = None
        self._last_request: float | None = None
        self._due: float | None = None

    def start(self, now: float) -> None:
        """Recording of the track starts: a key frame is wanted at once."""
        self._started = True
        self._due = now

    def packet(self, keyframe: bool, now: float) -> None:
        """A packet of the track arrived; ``keyframe``: it starts a key frame."""
        if not self._started:
            return
        if keyframe:
            self._last_keyframe = now
            self._due = now + self.interval
        elif self._due is None:
            self._due = now + self.interval

    def poll_request(self, now: float) -> bool:
        """True when a key frame should be requested now (at most once per ``retry`` seconds)."""
        if self._due is None or now < self._due:
            return False
        self._last_request = now
        self.requests += 1
        self._due = now + self.retry  # again if none comes by then
        return True

    def next_deadline(self) -> float | None:
        """When :meth:`poll_request` may next say yes."""
        return self._due

    @property
    def last_keyframe(self) -> float | None:
        return self._last_keyframe
