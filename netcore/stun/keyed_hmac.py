"""HMAC (RFC 2104) from cached inner and outer hash states, for keys used again and again.

A STUN agent signs and checks many messages with few keys, and a TURN server
mints and checks its nonces under one key. Starting from the hash states
after the padded key saves the key schedule on every message: OpenSSL's
one-shot HMAC (``hmac.digest``) redoes it, and looks the digest up, each
time, and is about three times slower here on a short message.
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["KeyedStates", "keyed_hmac"]


class KeyedStates(dict):  # type: ignore[type-arg]
    """HMAC's inner and outer hash states after the padded key, by key, for one digest.

    At most ``MAX_KEYS`` keys are kept (cleared when full), whatever the peers send.
    """

    MAX_KEYS = 1024

    def __init__(self, digest: str) -> None:
        super().__init__()
        self.digest = digest

    def __missing__(self, key: bytes) -> tuple[Any, Any]:
        if len(self) >= self.MAX_KEYS:
            self.clear()
        pads = self[key] = _make_pads(key, self.digest)
        return pads


def keyed_hmac(key: bytes, data: bytes, states: KeyedStates) -> bytes:
    """HMAC of ``data`` under ``key`` with the digest of ``states``."""
    inner, outer = states[key]
    inner = inner.copy()
    inner.update(data)
    outer = outer.copy()
    outer.update(inner.digest())
    return outer.digest()


def _make_pads(key: bytes, digest: str) -> tuple[Any, Any]:
    constructor = getattr(hashlib, digest)
    block_size = constructor().block_size
    if len(key) > block_size:
        key = constructor(key).digest()
    key = key.ljust(block_size, b"\x00")
    return (
        constructor(bytes(b ^ 0x36 for b in key)),
        constructor(bytes(b ^ 0x5C for b in key)),
    )
