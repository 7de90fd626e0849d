"""Cipher suites, key-exchange groups and signature schemes we negotiate.

RFC 5289 / RFC 7905 suites, RFC 8422 / RFC 7748 groups, RFC 8446 section
4.2.3 signature scheme code points (also used by TLS 1.2 peers).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, x25519

from netcore.errors import UsageError

from . import handshake as hs
from .errors import DtlsParseError, HandshakeError
from .handshake import ExtensionType
from .record import AlertDescription

__all__ = [
    "DEFAULT_CIPHER_SUITES",
    "DEFAULT_GROUPS",
    "DEFAULT_SRTP_PROFILES",
    "SIGNATURE_SCHEMES",
    "choose_parameters",
    "CipherSuite",
    "SUITES",
    "NamedGroup",
    "SignatureScheme",
    "KeyShare",
    "SrtpProfile",
    "sign",
    "verify",
]


class CipherSuite(enum.IntEnum):
    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 = 0xC02B
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 = 0xC02F
    TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 = 0xCCA9
    TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 = 0xCCA8


@dataclass(frozen=True)
class SuiteParams:
    aead: str  # "aes_gcm" or "chacha20_poly1305"
    key_length: int
    iv_length: int  # fixed_iv_length from the key block
    authentication: str  # "ecdsa" or "rsa"

    @property
    def key_block_length(self) -> int:
        """RFC 5246 section 6.3: two write keys and two IVs (AEAD suites have no MAC keys)."""
        return 2 * self.key_length + 2 * self.iv_length


SUITES: dict[int, SuiteParams] = {
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: SuiteParams("aes_gcm", 16, 4, "ecdsa"),
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: SuiteParams("aes_gcm", 16, 4, "rsa"),
    CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: SuiteParams(
        "chacha20_poly1305", 32, 12, "ecdsa"
    ),
    CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: SuiteParams(
        "chacha20_poly1305", 32, 12, "rsa"
    ),
}


class NamedGroup(enum.IntEnum):
    secp256r1 = 23
    x25519 = 29


class SignatureScheme(enum.IntEnum):
    rsa_pkcs1_sha256 = 0x0401
    ecdsa_secp256r1_sha256 = 0x0403
    rsa_pss_rsae_sha256 = 0x0804


class SrtpProfile(enum.IntEnum):
    """RFC 5764 section 4.1.2 and RFC 7714 section 14.2 profile ids."""

    SRTP_AES128_CM_HMAC_SHA1_80 = 0x0001
    SRTP_AES128_CM_HMAC_SHA1_32 = 0x0002
    SRTP_AEAD_AES_128_GCM = 0x0007
    SRTP_AEAD_AES_256_GCM = 0x0008


class KeyShare:
    """An ephemeral ECDH key for one group: our public point and the shared secret."""

    __slots__ = ("group", "_private")

    def __init__(self, group: int) -> None:
        self.group = group
        if group == NamedGroup.x25519:
            self._private = x25519.X25519PrivateKey.generate()
        elif group == NamedGroup.secp256r1:
            self._private = ec.generate_private_key(ec.SECP256R1())
        else:
            raise UsageError(f"unsupported group {group}")

    def public_bytes(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        if self.group == NamedGroup.x25519:
            return self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return self._private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)

    def exchange(self, peer_public: bytes) -> bytes:
        """The pre-master secret; a bad point is an ``illegal_parameter`` alert."""
        try:
            if self.group == NamedGroup.x25519:
                peer = x25519.X25519PublicKey.from_public_bytes(peer_public)
                return self._private.exchange(peer)
            peer_ec = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), peer_public)
            return self._private.exchange(ec.ECDH(), peer_ec)
        except (ValueError, UnsupportedAlgorithm):
            raise HandshakeError(AlertDescription.illegal_parameter, "bad ECDH public key") from None


def scheme_fits_key(scheme: int, public_key) -> bool:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return scheme == SignatureScheme.ecdsa_secp256r1_sha256 and isinstance(
            public_key.curve, ec.SECP256R1
        )
    if isinstance(public_key, rsa.RSAPublicKey):
        return scheme in (SignatureScheme.rsa_pss_rsae_sha256, SignatureScheme.rsa_pkcs1_sha256)
    return False


def _rsa_padding(scheme: int):
    if scheme == SignatureScheme.rsa_pss_rsae_sha256:
        return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    return padding.PKCS1v15()


def sign(private_key, scheme: int, data: bytes) -> bytes:
    if scheme == SignatureScheme.ecdsa_secp256r1_sha256:
        return private_key.sign(data, ec.ECDSA(hashes.SHA256()))
    return private_key.sign(data, _rsa_padding(scheme), hashes.SHA256())


def verify(public_key, scheme: int, signature: bytes, data: bytes) -> None:
    """Raise ``HandshakeError(decrypt_error)`` unless the signature is valid."""
    if not scheme_fits_key(scheme, public_key):
        raise HandshakeError(AlertDescription.illegal_parameter, "signature scheme does not fit key")
    try:
        if scheme == SignatureScheme.ecdsa_secp256r1_sha256:
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            public_key.verify(signature, data, _rsa_padding(scheme), hashes.SHA256())
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        raise HandshakeError(AlertDescription.decrypt_error, "bad signature") from None


def preferred_scheme(private_key, offered: list[int]) -> int:
    """The first scheme in ``offered`` (our order) that fits our key."""
    public_key = private_key.public_key()
    for scheme in offered:
        if scheme in SignatureScheme._value2member_map_ and scheme_fits_key(scheme, public_key):
            return scheme
    raise HandshakeError(AlertDescription.handshake_failure, "no common signature scheme")


# Our preference order, the first of each list preferred.
DEFAULT_SRTP_PROFILES = (
    SrtpProfile.SRTP_AEAD_AES_128_GCM,
    SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80,
    SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_32,
)
DEFAULT_CIPHER_SUITES = (
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
)
DEFAULT_GROUPS = (NamedGroup.x25519, NamedGroup.secp256r1)
SIGNATURE_SCHEMES = (
    SignatureScheme.ecdsa_secp256r1_sha256,
    SignatureScheme.rsa_pss_rsae_sha256,
    SignatureScheme.rsa_pkcs1_sha256,
)


def choose_parameters(
    hello: hs.ClientHello, cipher_suites: list[int], groups: list[int], schemes: list[int], private_key
) -> tuple[int, int, int]:
    """A server's cipher suite, ECDHE group and signature scheme for ``hello``, in our order.

    Without supported_groups the client is taken to support P-256; without
    signature_algorithms, our SHA-256 schemes (RFC 5246 section 7.4.1.4.1
    would assume SHA-1, which we do not implement).  The suite must match
    the key type of our certificate.  No common choice: :class:`HandshakeError`.
    """
    try:
        groups_ext = hello.extension(ExtensionType.supported_groups)
        client_groups = hs.decode_u16_list_ext(groups_ext) if groups_ext is not None else [NamedGroup.secp256r1]
        schemes_ext = hello.extension(ExtensionType.signature_algorithms)
        client_schemes = hs.decode_u16_list_ext(schemes_ext) if schemes_ext is not None else list(SIGNATURE_SCHEMES)
    except DtlsParseError:
        raise HandshakeError(AlertDescription.decode_error, "bad ClientHello extension") from None
    group = next((g for g in groups if g in client_groups), None)
    if group is None:
        raise HandshakeError(AlertDescription.handshake_failure, "no common group")
    scheme = preferred_scheme(private_key, [s for s in schemes if s in client_schemes])
    authentication = "ecdsa" if scheme == SignatureScheme.ecdsa_secp256r1_sha256 else "rsa"
    suite = next(
        (s for s in cipher_suites if s in hello.cipher_suites and SUITES[s].authentication == authentication), None
    )
    if suite is None:
        raise HandshakeError(AlertDescription.handshake_failure, "no common cipher suite")
    return suite, group, scheme
