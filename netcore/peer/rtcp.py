"""When to send RTCP: the RFC 3550 section 6.3 interval, and RFC 4585's feedback modes.

Regular compound reports (SR/RR + SDES CNAME) follow RFC 3550 section
6.3.1: 5 % of the session bandwidth for RTCP (senders get a quarter of it
when they are a quarter of the members or fewer), the average compound
size smoothed with weight 1/16, the reduced minimum ``360 / session kbit/s``
(section 6.2; at most 5 s), half of it before the first report, and the
interval randomised over [0.5, 1.5] and divided by e - 3/2 (section 6.3.1,
"timer reconsideration" compensation). The random draws come from the
injected source.

Feedback (NACK, PLI, FIR, transport-wide feedback) follows RFC 4585
section 3.5: a two-party session whose RTCP budget covers it is in
Immediate Feedback mode, so feedback leaves when it is due, as its own
reduced-size packet when RFC 5506 was agreed, else in a compound with a
report. A feedback packet sent in a compound counts as the next regular
report (RFC 4585 section 3.5.2: ``t_rr_last`` moves, the next regular
report is one interval later).
"""

from __future__ import annotations

import math
from typing import Callable

__all__ = ["RtcpTimer"]

RTCP_FRACTION = 0.05  # RFC 3550 section 6.2
SENDER_FRACTION = 0.25
COMPENSATION = math.e - 1.5  # RFC 3550 section 6.3.1
MAX_MINIMUM = 5.0
UDP_IP_OVERHEAD = 28


class RtcpTimer:
    """The next regular report time of one transport."""

    def __init__(self, random: Callable[[int], bytes], min_interval: float | None = None) -> None:
        self._random = random
        self.min_interval = min_interval  # a floor under the reduced minimum (None: none)
        self.avg_rtcp_size = 100.0  # octets, with UDP/IP overhead
        self.initial = True
        self.next_report: float | None = None
        self.last_report: float | None = None

    def _uniform(self) -> float:
        return int.from_bytes(self._random(4), "big") / 0xFFFFFFFF

    def packet_size(self, size: int) -> None:
        """A compound sent or received: RFC 3550 section 6.3.3 / 6.3.6 ``avg_rtcp_size``."""
        self.avg_rtcp_size += (size + UDP_IP_OVERHEAD - self.avg_rtcp_size) / 16

    def interval(self, session_bandwidth: float, members: int, senders: int, we_sent: bool) -> float:
        """RFC 3550 section 6.3.1 (with the reduced minimum of 6.2), randomised."""
        rtcp_bw = max(session_bandwidth, 1.0) * RTCP_FRACTION / 8  # octets per second
        minimum = min(MAX_MINIMUM, 360.0 / max(session_bandwidth / 1000, 1e-3))
        if self.min_interval is not None:
            minimum = max(minimum, self.min_interval)
        if self.initial:
            minimum /= 2
        members = max(members, 2)
        n = members
        if 0 < senders <= SENDER_FRACTION * members:
            if we_sent:
                rtcp_bw *= SENDER_FRACTION
                n = senders
            else:
                rtcp_bw *= 1 - SENDER_FRACTION
                n = members - senders
        deterministic = max(minimum, n * self.avg_rtcp_size / rtcp_bw)
        return deterministic * (0.5 + self._uniform()) / COMPENSATION

    def schedule(self, now: float, session_bandwidth: float, members: int, senders: int, we_sent: bool) -> None:
        """A report went out at ``now``: schedule the next regular one."""
        self.last_report = now
        self.next_report = now + self.interval(session_bandwidth, members, senders, we_sent)
        self.initial = False

    def due(self, now: float) -> bool:
        return self.next_report is not None and now >= self.next_report
