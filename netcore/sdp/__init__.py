"""SDP (RFC 8866) and JSEP offer/answer (RFC 8829).

``wire`` parses and writes session descriptions byte for byte, ``attributes``
holds the typed attribute values, ``candidate`` the ICE ``Candidate`` shared
with the ICE layer, and ``jsep`` builds offers and answers and reports the
negotiated result.
"""

from . import attributes
from .attributes import *  # noqa: F403  (the typed attribute values, listed in attributes.__all__)
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
    *attributes.__all__,
    "Candidate",
    "CandidateError",
    "Codec",
    "Limits",
    "Line",
    "LocalTransport",
    "MediaIntent",
    "MediaSection",
    "NegotiatedMedia",
    "NegotiatedSession",
    "NegotiationError",
    "Negotiator",
    "RemoteTransport",
    "SdpParseError",
    "Section",
    "SessionDescription",
    "parse",
]
