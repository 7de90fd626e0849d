"""DTLS 1.2 (RFC 6347) with the DTLS-SRTP extension (RFC 5764)."""

from .certificate import DtlsCertificate, fingerprint, fingerprint_matches
from .connection import DtlsConnection, DtlsStats, State
from .errors import DtlsParseError
from .events import (
    DtlsEvent,
    AlertReceived,
    ApplicationDataReceived,
    ConnectionClosed,
    HandshakeCompleted,
    HandshakeFailed,
)
from .suites import CipherSuite, NamedGroup, SignatureScheme, SrtpProfile

__all__ = [
    "AlertReceived",
    "ApplicationDataReceived",
    "CipherSuite",
    "ConnectionClosed",
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
