"""Keys for MESSAGE-INTEGRITY and MESSAGE-INTEGRITY-SHA256 (RFC 8489 section 9).

Short-term credentials (section 9.1.1): key = OpaqueString(password).
Long-term credentials (section 9.2.2): key = MD5(username ":" realm ":"
OpaqueString(password)), or SHA-256 of the same when PASSWORD-ALGORITHM says
SHA-256. USERHASH (section 14.4) = SHA-256(username ":" realm).
"""

from __future__ import annotations

import hashlib

from netcore.errors import UsageError
from netcore.stun.attributes import ALGORITHM_MD5, ALGORITHM_SHA256
from netcore.stun.saslprep import saslprep

__all__ = ["short_term_key", "long_term_key", "userhash"]


def short_term_key(password: str) -> bytes:
    return saslprep(password).encode("utf-8")


def long_term_key(username: str, realm: str, password: str, algorithm: int = ALGORITHM_MD5) -> bytes:
    material = f"{username}:{realm}:{saslprep(password)}".encode("utf-8")
    if algorithm == ALGORITHM_MD5:
        return hashlib.md5(material).digest()
    if algorithm == ALGORITHM_SHA256:
        return hashlib.sha256(material).digest()
    raise UsageError(f"unknown password algorithm {algorithm}")


def userhash(username: str, realm: str) -> bytes:
    return hashlib.sha256(f"{username}:{realm}".encode("utf-8")).digest()
