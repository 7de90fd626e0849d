"""Events a :class:`~netcore.dtls.connection.DtlsConnection` reports (past tense)."""

from __future__ import annotations

from dataclasses import dataclass, field

from netcore.net import Event

__all__ = [
    "DtlsEvent",
    "HandshakeCompleted",
    "HandshakeFailed",
    "DataReceived",
    "AlertReceived",
    "ConnectionClosed",
]


@dataclass(frozen=True, slots=True)
class DtlsEvent(Event):
    """Base of every event of the DTLS layer."""


@dataclass(frozen=True, slots=True)
class HandshakeCompleted(DtlsEvent):
    cipher_suite: int
    srtp_profile: int | None  # RFC 5764 profile id, None if use_srtp was not negotiated
    peer_certificate: bytes = field(repr=False)  # DER
    peer_fingerprint: str = ""  # sha-256, "AB:CD:..."
    extended_master_secret: bool = True


@dataclass(frozen=True, slots=True)
class HandshakeFailed(DtlsEvent):
    reason: str
    alert: int | None  # the alert description sent or received, if any


@dataclass(frozen=True, slots=True)
class DataReceived(DtlsEvent):
    """Application data from the peer: one record's plaintext."""

    data: bytes


@dataclass(frozen=True, slots=True)
class AlertReceived(DtlsEvent):
    level: int
    description: int


@dataclass(frozen=True, slots=True)
class ConnectionClosed(DtlsEvent):
    reason: str
