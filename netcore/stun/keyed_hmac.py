"""HMAC (RFC 2104) from cached inner and outer hash states, for keys used again and again.

A STUN agent signs and checks many messages with few keys, and a TURN server
mints and checks its nonces under one key. Starting from the hash states
after the padded key saves the key schedule on every message: OpenSSL's
one-shot HMAC (``hmac.digest``) redoes it, and looks the digest up, each
time, and is about three times slower here on a short message. With the
compiled codec (:mod:`netcore.stun.compiled`) the states are its
``KeyedMac`` objects, which :mod:`netcore.stun.message` hands to it to check
and sign without the interpreter; else Python ``hashlib`` states.
"""

from __future__ import annotations

import hashlib
import weakref
from typing import Any

from netcore.stun import compiled

__all__ = ["KeyedStates", "keyed_hmac", "forget_keys"]

_ALL: list[weakref.ref[KeyedStates]] = []  # every table, for forget_keys (a few, made at import)


class KeyedStates(dict):  # type: ignore[type-arg]
    """HMAC's inner and outer hash states after the padded key, by key, for one digest.

    At most ``MAX_KEYS`` keys are kept (cleared when full), whatever the peers send.
    Each value has ``digest(data)``: the HMAC of ``data`` under its key.
    """

    MAX_KEYS = 1024

    def __init__(self, digest: str) -> None:
        super().__init__()
        if digest not in ("sha1", "sha256"):
            raise ValueError(f"STUN uses HMAC-SHA1 and HMAC-SHA256, not {digest}")
        self.digest = digest
        _ALL[:] = [ref for ref in _ALL if ref() is not None] + [weakref.ref(self)]

    def __missing__(self, key: bytes) -> Any:
        if len(self) >= self.MAX_KEYS:
            self.clear()
        codec = compiled.codec
        if codec is not None:
            mac = codec.KeyedMac(key, self.digest == "sha256")
        else:
            mac = _HashStates(key, self.digest)
        self[key] = mac
        return mac


def keyed_hmac(key: bytes, data: bytes, states: KeyedStates) -> bytes:
    """HMAC of ``data`` under ``key`` with the digest of ``states``."""
    return states[key].digest(data)


def forget_keys() -> None:
    """Drop every cached key (the codec changed: the states are of the other kind)."""
    for ref in _ALL:
        states = ref()
        if states is not None:
            states.clear()


class _HashStates:
    """The Python states: ``hashlib`` objects after the padded key, copied per message."""

    __slots__ = ("inner", "outer")

    def __init__(self, key: bytes, digest: str) -> None:
        constructor = getattr(hashlib, digest)
        block_size = constructor().block_size
        if len(key) > block_size:
            key = constructor(key).digest()
        key = key.ljust(block_size, b"\x00")
        self.inner = constructor(bytes(b ^ 0x36 for b in key))
        self.outer = constructor(bytes(b ^ 0x5C for b in key))

    def digest(self, data: bytes) -> bytes:
        inner = self.inner.copy()
        inner.update(data)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.digest()
