"""Endpoint certificates: self-signed ECDSA P-256 (or RSA, or loaded) and
their SHA-256 fingerprints for SDP ``a=fingerprint`` (RFC 8122 section 5)."""

from __future__ import annotations

import datetime
import hashlib
import hmac
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from netcore.errors import UsageError

from .errors import HandshakeError
from .record import AlertDescription

__all__ = ["DtlsCertificate", "fingerprint", "fingerprint_matches", "peer_public_key"]


def fingerprint(der: bytes, algorithm: str = "sha-256") -> str:
    """``AB:CD:...`` upper-case hex of the certificate's digest (RFC 8122 section 5)."""
    digest = hashlib.new(algorithm.replace("-", ""), der).digest()
    return ":".join(f"{b:02X}" for b in digest)


def fingerprint_matches(der: bytes, expected: list[tuple[str, str]]) -> bool:
    """True if any of the ``(algorithm, value)`` pairs matches ``der``."""
    for algorithm, value in expected:
        try:
            ours = fingerprint(der, algorithm.lower())
        except ValueError:
            continue
        if hmac.compare_digest(ours.encode(), value.upper().encode()):
            return True
    return False


def peer_public_key(
    der: bytes, fingerprints: list[tuple[str, str]] | None, at: datetime.datetime | None = None
):
    """The public key of the peer's certificate, once it passes our checks.

    The certificate must parse, match one of ``fingerprints`` (RFC 8122; None
    leaves that to the application) and, if ``at`` is given, be valid then;
    otherwise :class:`HandshakeError` with the alert to send.
    """
    try:
        certificate = x509.load_der_x509_certificate(der)
        public_key = certificate.public_key()
        validity = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion):  # InvalidVersion is no ValueError
        raise HandshakeError(AlertDescription.bad_certificate, "unparsable certificate") from None
    if at is not None and not validity[0] <= at <= validity[1]:
        # WebRTC authenticates by fingerprint; validity is checked only on request.
        raise HandshakeError(AlertDescription.certificate_expired, "certificate not valid now")
    if fingerprints is not None and not fingerprint_matches(der, fingerprints):
        raise HandshakeError(AlertDescription.bad_certificate, "certificate fingerprint mismatch")
    return public_key


@dataclass(frozen=True)
class DtlsCertificate:
    """A certificate (DER) and its private key."""

    der: bytes
    private_key: object

    @classmethod
    def generate(
        cls,
        common_name: str = "netcore",
        key_type: str = "ec",
        not_before: datetime.datetime | None = None,
        days: int = 30,
    ) -> "DtlsCertificate":
        """A fresh self-signed certificate, as WebRTC endpoints make per session."""
        if key_type == "ec":
            key = ec.generate_private_key(ec.SECP256R1())
        elif key_type == "rsa":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise UsageError("key_type is 'ec' or 'rsa'")
        if not_before is None:
            not_before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + datetime.timedelta(days=days))
            .sign(key, hashes.SHA256())
        )
        return cls(cert.public_bytes(serialization.Encoding.DER), key)

    @classmethod
    def load_pem(cls, cert_pem: bytes, key_pem: bytes, password: bytes | None = None) -> "DtlsCertificate":
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password)
        return cls(cert.public_bytes(serialization.Encoding.DER), key)

    def fingerprint(self, algorithm: str = "sha-256") -> str:
        return fingerprint(self.der, algorithm)

    def cert_pem(self) -> bytes:
        return x509.load_der_x509_certificate(self.der).public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
