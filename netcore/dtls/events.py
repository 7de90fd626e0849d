"""Events a :class:`~netcore.dtls.connection.DtlsConnection` reports (past tense)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "HandshakeCompleted",
    "HandshakeFailed",
    "ApplicationDataReceived",
    "AlertReceived",
    "ConnectionClosed",
    "DtlsEvent",
]


@dataclass(frozen=True)
class HandshakeCompleted:
    cipher_suite: int
    srtp_profile: int | None  # RFC 5764 profile id, None if use_srtp was not negotiated
    peer_certificate: bytes = field(repr=False)  # DER
    peer_fingerprint: str = ""  # sha-256, "AB:CD:..."
    extended_master_secret: bool = True


@dataclass(frozen=True)
class HandshakeFailed:
    reason: str
    alert: int | None  # the alert description sent or received, if any


@dataclass(frozen=True)
class ApplicationDataReceived:
    data: bytes


@dataclass(frozen=True)
class AlertReceived:
    level: int
    description: int


@dataclass(frozen=True)
class ConnectionClosed:
    reason: str


DtlsEvent = HandshakeCompleted | HandshakeFailed | ApplicationDataReceived | AlertReceived | ConnectionClosed
