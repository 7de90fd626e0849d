"""The source's clock for the renditions' sender reports (RFC 3550 section 6.4.1).

A rendition frame carries the RTP timestamp of the source frame it was made
from, so the only thing a rendition's sender must add is the wallclock those
timestamps stand for: the one the source's own sender reports give.  With
it, a rendition's SR pairs the same NTP time with the same RTP timestamp as
the source's SR, and a receiver or a recording that lines audio up with the
video (by the SRs of both) stays in sync whichever version of the video it
is sent, original or rendition.  Until the source has sent an SR, there is
no mapping and the sender falls back on its own clock.
"""

from __future__ import annotations

from netcore.rtp.reports import NtpRtpMapping

__all__ = ["SourceClock"]


class SourceClock:
    """The latest NTP/RTP correspondence of the source track, from its sender reports."""

    __slots__ = ("mapping",)

    def __init__(self) -> None:
        self.mapping: NtpRtpMapping | None = None

    def sender_report(self, mapping: NtpRtpMapping) -> None:
        """The source sent an SR: its mapping replaces the previous one."""
        self.mapping = mapping

    def capture_time(self, rtp_timestamp: int, wallclock_offset: float) -> float | None:
        """When (the caller's monotonic clock, wallclock minus ``wallclock_offset``) the source captured
        the frame of ``rtp_timestamp``; None before the source's first SR.

        A rendition's sender gives this to its reporter
        (:meth:`~netcore.rtp.reports.RtcpReporter.media_captured`) for each frame it sends.
        """
        if self.mapping is None:
            return None
        return self.mapping.to_seconds(rtp_timestamp) - wallclock_offset
