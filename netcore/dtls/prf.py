"""The TLS 1.2 PRF and what is derived from it (RFC 5246 section 5, 6.3, 7.4.9;
RFC 7627 extended master secret; RFC 5705 keying material exporter)."""

from __future__ import annotations

import hashlib
import hmac

__all__ = [
    "prf",
    "master_secret",
    "extended_master_secret",
    "key_block",
    "verify_data",
    "export_keying_material",
]


def prf(secret: bytes, label: bytes, seed: bytes, length: int, hash_name: str = "sha256") -> bytes:
    """PRF(secret, label, seed) = P_<hash>(secret, label + seed), RFC 5246 section 5."""
    seed = label + seed
    out = bytearray()
    a = seed
    while len(out) < length:
        a = hmac.digest(secret, a, hash_name)
        out += hmac.digest(secret, a + seed, hash_name)
    return bytes(out[:length])


def master_secret(pre_master: bytes, client_random: bytes, server_random: bytes) -> bytes:
    # RFC 5246 section 8.1
    return prf(pre_master, b"master secret", client_random + server_random, 48)


def extended_master_secret(pre_master: bytes, session_hash: bytes) -> bytes:
    # RFC 7627 section 4
    return prf(pre_master, b"extended master secret", session_hash, 48)


def key_block(master: bytes, client_random: bytes, server_random: bytes, length: int) -> bytes:
    # RFC 5246 section 6.3: note server_random comes first here.
    return prf(master, b"key expansion", server_random + client_random, length)


def verify_data(master: bytes, is_client: bool, transcript_hash: bytes) -> bytes:
    # RFC 5246 section 7.4.9
    label = b"client finished" if is_client else b"server finished"
    return prf(master, label, transcript_hash, 12)


def export_keying_material(
    master: bytes,
    client_random: bytes,
    server_random: bytes,
    label: bytes,
    length: int,
    context: bytes | None = None,
) -> bytes:
    """RFC 5705 section 4: PRF(master, label, client_random + server_random [+ context])."""
    seed = client_random + server_random
    if context is not None:
        seed += len(context).to_bytes(2, "big") + context
    return prf(master, label, seed, length)


def transcript_hash(messages: list[bytes]) -> bytes:
    h = hashlib.sha256()
    for m in messages:
        h.update(m)
    return h.digest()
