"""Key-frame requests from many subscribers arbitrated into few upstream (RFC 4585 6.3.1, RFC 5104 4.3.1).

Every subscriber that joins, loses a frame or is switched to a new source
asks for a key frame; forwarding each request to the publisher would make
it send key frames back to back (a key frame costs several times a delta
frame, and the larger bitrate share starves the rest of the stream).  One
:class:`KeyFrameArbiter` per published video source sends at most one
request upstream per :data:`KEYFRAME_INTERVAL`:

* a request while none is in flight and the interval since the last one
  has passed goes up at once (a new subscriber gets its key frame within
  one round trip);
* a request while one is in flight (asked, its key frame not seen yet) is
  served by that key frame: nothing more is sent;
* a request within the interval after the last key frame arrived is held
  and sent when the interval ends (at most one held).
"""

from __future__ import annotations

__all__ = ["KeyFrameArbiter", "KEYFRAME_INTERVAL", "KEYFRAME_RETRY"]

KEYFRAME_INTERVAL = 0.5  # seconds: at most one upstream request per interval
KEYFRAME_RETRY = 0.4  # seconds: a request in flight whose key frame never came is asked again (Chromium ignores
# a request within 300 ms of its previous one on any layer of the track: libwebrtc's min key frame send interval)


class KeyFrameArbiter:
    """When to ask one publisher's source for a key frame."""

    __slots__ = ("interval", "_last_request", "_in_flight", "_held", "requested", "coalesced")

    def __init__(self, interval: float = KEYFRAME_INTERVAL) -> None:
        self.interval = interval
        self._last_request = float("-inf")
        self._in_flight = False
        self._held = False
        self.requested = 0  # requests sent upstream
        self.coalesced = 0  # subscriber requests that did not cause one

    def request(self, now: float, counted: bool = True) -> bool:
        """A subscriber needs a key frame: True if the request goes upstream now.

        ``counted=False``: a slot still waiting repeats its request; it goes
        up only when the last one is older than :data:`KEYFRAME_RETRY` (lost,
        or ignored by the publisher), and is never held.
        """
        if self._in_flight and now - self._last_request < KEYFRAME_RETRY:
            self.coalesced += counted
            return False
        if now - self._last_request >= self.interval:
            return self._send(now)
        if counted:
            self.coalesced += 1
            self._held = True
        return False

    def keyframe_received(self) -> None:
        self._in_flight = False

    def next_deadline(self) -> float | None:
        return self._last_request + self.interval if self._held else None

    def handle_timeout(self, now: float) -> bool:
        """True if a held request goes upstream now."""
        if self._held and now - self._last_request >= self.interval:
            self._held = False
            if self._in_flight and now - self._last_request < KEYFRAME_RETRY:
                return False  # the key frame asked for is still on its way and serves everyone
            return self._send(now)
        return False

    def _send(self, now: float) -> bool:
        self._last_request = now
        self._in_flight = True
        self._held = False
        self.requested += 1
        return True
