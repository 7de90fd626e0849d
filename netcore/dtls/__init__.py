"""DTLS 1.2 (RFC 6347) with the DTLS-SRTP extension (RFC 5764)."""

from .certificate import DtlsCertificate, fingerprint, fingerprint_matches
from .connection import DtlsConnection, DtlsStats, State
from .errors import DtlsParseError
from .events import (
    DtlsEvent,
    AlertReceived,
    ConnectionClosed,
    DataReceived,
    HandshakeCompleted,
    HandshakeFailed,
)
from .suites import CipherSuite, NamedGroup, SignatureScheme, SrtpProfile

__all__ = [
    "AlertReceived",
    "CipherSuite",
    "ConnectionClosed",
    "DataReceived",
    "DtlsCertificate",
    "DtlsConnection",
    "DtlsParseError",
    "DtlsEvent",
    "DtlsStats",
    "HandshakeCompleted",
    "HandshakeFailed",
    "NamedGroup",
    "SignatureScheme",
    "SrtpProfile",
    "State",
    "fingerprint",
    "fingerprint_matches",
]
