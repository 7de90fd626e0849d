"""SRTP protection profiles and the DTLS-SRTP key split (RFC 5764 section 4.2).

The exporter output (label ``EXTRACTOR-dtls_srtp``) is laid out as
client_write_SRTP_master_key | server_write_SRTP_master_key |
client_write_SRTP_master_salt | server_write_SRTP_master_salt.
"""

from __future__ import annotations

from dataclasses import dataclass

import pylibsrtp

from netcore.dtls.suites import SrtpProfile  # the use_srtp code points
from netcore.errors import UsageError

__all__ = ["SrtpProfile", "ProfileParams", "PROFILES", "EXPORTER_LABEL", "split_keying_material"]

EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"


@dataclass(frozen=True)
class ProfileParams:
    key_length: int
    salt_length: int
    libsrtp_profile: int
    openssl_name: bytes  # as in SSL_CTX_set_tlsext_use_srtp

    @property
    def keying_material_length(self) -> int:
        return 2 * (self.key_length + self.salt_length)


PROFILES: dict[int, ProfileParams] = {
    SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80: ProfileParams(
        16, 14, pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, b"SRTP_AES128_CM_SHA1_80"
    ),
    SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_32: ProfileParams(
        16, 14, pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32, b"SRTP_AES128_CM_SHA1_32"
    ),
    SrtpProfile.SRTP_AEAD_AES_128_GCM: ProfileParams(
        16, 12, pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, b"SRTP_AEAD_AES_128_GCM"
    ),
    SrtpProfile.SRTP_AEAD_AES_256_GCM: ProfileParams(
        32, 12, pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM, b"SRTP_AEAD_AES_256_GCM"
    ),
}


def split_keying_material(profile: int, material: bytes, is_client: bool) -> tuple[bytes, bytes]:
    """``(local, remote)`` master key||salt for our role, from the exporter output."""
    params = PROFILES[profile]
    k, s = params.key_length, params.salt_length
    if len(material) != params.keying_material_length:
        raise UsageError("keying material length does not fit the profile")
    client_key, server_key = material[:k], material[k : 2 * k]
    client_salt, server_salt = material[2 * k : 2 * k + s], material[2 * k + s :]
    client, server = client_key + client_salt, server_key + server_salt
    return (client, server) if is_client else (server, client)
