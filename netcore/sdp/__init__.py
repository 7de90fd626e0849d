"""SDP (RFC 8866) and JSEP offer/answer (RFC 8829).

``wire`` parses and writes session descriptions byte for byte, ``attributes``
holds the typed attribute values, ``candidate`` the ICE ``Candidate`` shared
with the ICE layer, and ``jsep`` builds offers and answers and reports the
negotiated result.
"""

from .attributes import (
    Bandwidth,
    Connection,
    Extmap,
    Fingerprint,
    Fmtp,
    Group,
    ImageAttr,
    Media,
    Msid,
    Origin,
    Rid,
    Rtcp,
    RtcpFb,
    Rtpmap,
    Simulcast,
    SimulcastRid,
    Ssrc,
    SsrcGroup,
    Timing,
)
from .candidate import Candidate, CandidateError
from .codecs import Codec
from .jsep import (
    LocalTransport,
    MediaIntent,
    NegotiatedMedia,
    NegotiatedSession,
    NegotiationError,
    Negotiator,
    RemoteTransport,
)
from .limits import Limits
from .wire import Line, MediaSection, SdpParseError, Section, SessionDescription, parse

__all__ = [
    "Bandwidth",
    "Candidate",
    "CandidateError",
    "Codec",
    "Connection",
    "Extmap",
    "Fingerprint",
    "Fmtp",
    "Group",
    "ImageAttr",
    "Limits",
    "Line",
    "LocalTransport",
    "Media",
    "MediaIntent",
    "MediaSection",
    "Msid",
    "NegotiatedMedia",
    "NegotiatedSession",
    "NegotiationError",
    "Negotiator",
    "Origin",
    "RemoteTransport",
    "Rid",
    "Rtcp",
    "RtcpFb",
    "Rtpmap",
    "SdpParseError",
    "Section",
    "SessionDescription",
    "Simulcast",
    "SimulcastRid",
    "Ssrc",
    "SsrcGroup",
    "Timing",
    "parse",
]
