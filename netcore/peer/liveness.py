"""Is the path we send on still carrying our media? Transport-wide feedback says so.

ICE learns that a path died from consent checks (RFC 7675): one every 4 to
6 seconds, and a check unanswered for 2 seconds marks the pair degraded, so
up to 8 seconds of media go nowhere. A media transport knows sooner: once
the peer has acknowledged our packets with transport-wide feedback (it sends
one every 100 ms while media arrives), a second of packets sent without any
feedback means they no longer arrive, whatever consent says (a path can
pass small STUN messages and drop media, or lose both). :class:`FeedbackWatch`
notices that; the transport then asks ICE to move its sending path
(:meth:`netcore.ice.agent.Agent.switch_path`), and ICE checks the pair left
at once.

The watch only arms after the first feedback: a peer that never sends any
(TWCC not negotiated, or ignored) never makes us move.
"""

from __future__ import annotations

__all__ = ["FeedbackWatch", "SILENCE"]

SILENCE = 1.0  # seconds of unacknowledged sending before the path counts as lost
RTT_FACTOR = 4.0  # ... or this many round-trip times, when that is longer


class FeedbackWatch:
    """When did we start sending without hearing feedback, and has it been too long."""

    __slots__ = ("silence", "armed", "_unacknowledged_since")

    def __init__(self, silence: float = SILENCE) -> None:
        self.silence = silence
        self.armed = False
        self._unacknowledged_since: float | None = None

    def sent(self, now: float) -> None:
        """A packet that asks for feedback (a transport-wide sequence number) left."""
        if self.armed and self._unacknowledged_since is None:
            self._unacknowledged_since = now

    def feedback(self) -> None:
        """Transport-wide feedback arrived: what we sent before is acknowledged."""
        self.armed = True
        self._unacknowledged_since = None

    def limit(self, rtt: float | None) -> float:
        return max(self.silence, RTT_FACTOR * rtt) if rtt is not None else self.silence

    def deadline(self, rtt: float | None) -> float | None:
        since = self._unacknowledged_since
        return None if since is None else since + self.limit(rtt)

    def expired(self, now: float, rtt: float | None) -> bool:
        """True (once) when sending has gone unacknowledged for too long; the watch restarts."""
        deadline = self.deadline(rtt)
        if deadline is None or now < deadline:
            return False
        self._unacknowledged_since = None
        return True
