"""RTP and RTCP (RFC 3550, RFC 4585, RFC 5104, RFC 8285) and payload formats.

Modules, one concept each:

* ``packet`` -- the RTP packet: lazy parse, build, in-place header rewrite;
* ``extensions`` -- RFC 8285 header extensions and the registered URIs;
* ``forward`` -- an SFU's per-track rewriter onto one continuous stream;
* ``rtx`` -- RFC 4588 retransmission wrap/unwrap;
* ``history`` -- sent packets, answering NACKs (plain or RTX);
* ``sequence`` -- 16/32-bit counters unwrapped to unbounded integers;
* ``stats`` -- RFC 3550 appendix A receiver statistics;
* ``rtcp``, ``feedback`` -- RTCP packets and compound parsing;
* ``reports`` -- SR/RR generation, RTT, NTP/RTP mapping;
* ``twcc`` -- transport-wide CC feedback from recorded arrivals;
* ``events`` -- :class:`RtpEvent`, the base of the layer's events;
* ``vp8``, ``h264``, ``opus``, ``keyframes``, ``fragment`` -- payload formats.
"""

from netcore.rtp.errors import RtcpParseError, RtpParseError
from netcore.rtp.events import RtpEvent
from netcore.rtp.packet import RtpPacket, rewrite_header

__all__ = ["RtpParseError", "RtcpParseError", "RtpEvent", "RtpPacket", "rewrite_header"]
