"""Long-term credentials for the TURN server (RFC 8489 section 9.2, RFC 8656 section 5).

Two pieces, both free of per-client state:

* :class:`NonceIssuer` makes stateless nonces: the issue time and an HMAC
  over that time and the client's address, under a key drawn at start-up.
  Checking a nonce needs nothing but the key, so answering 401 stores
  nothing; a nonce older than ``lifetime`` (or minted for another address)
  is stale and gets 438. The nonce starts with the RFC 8489 section 9.2
  cookie ``obMatJos2`` and the security feature set, announcing that
  PASSWORD-ALGORITHMS is supported.
* :class:`Credentials` finds the password for a USERNAME: static users from
  the configuration, and TURN REST API usernames (``expiry:userid``) checked
  against one or more shared secrets, expired ones refused. Keys are
  computed once per (user, algorithm) and cached in a bounded dict.
"""

from __future__ import annotations

import base64
import hmac
import struct
from typing import Iterable

from netcore.stun.attributes import ALGORITHM_MD5, ALGORITHM_SHA256
from netcore.stun.credentials import long_term_key
from netcore.turn.credentials import rest_api_expiry, rest_api_password

__all__ = ["NonceIssuer", "Credentials", "PASSWORD_ALGORITHMS", "NONCE_COOKIE"]

NONCE_COOKIE = "obMatJos2"  # RFC 8489 section 9.2
# Security feature set (section 18.1): bit 0, "Password algorithms".
_FEATURES = base64.b64encode(b"\x80\x00\x00").decode("ascii")
_NONCE_PREFIX = NONCE_COOKIE + _FEATURES
_TIME = struct.Struct("!Q")

# What we offer in PASSWORD-ALGORITHMS, in order of preference (section 14.11).
PASSWORD_ALGORITHMS: tuple[tuple[int, bytes], ...] = ((ALGORITHM_SHA256, b""), (ALGORITHM_MD5, b""))


class NonceIssuer:
    """Stateless nonces bound to a client address and an issue time."""

    __slots__ = ("key", "lifetime")

    def __init__(self, key: bytes, lifetime: float = 3600.0) -> None:
        self.key = key
        self.lifetime = lifetime

    def _mac(self, issued: int, addr: tuple) -> str:
        material = _TIME.pack(issued) + f"{addr[0]}|{addr[1]}".encode("ascii", "replace")
        return hmac.digest(self.key, material, "sha256")[:12].hex()

    def issue(self, addr: tuple, now: float) -> str:
        issued = int(now)
        return f"{_NONCE_PREFIX}{issued:016x}{self._mac(issued, addr)}"

    def is_fresh(self, nonce: str, addr: tuple, now: float) -> bool:
        """True if we minted ``nonce`` for ``addr`` less than ``lifetime`` seconds ago."""
        if len(nonce) != len(_NONCE_PREFIX) + 40 or not nonce.startswith(_NONCE_PREFIX):
            return False
        stamp = nonce[len(_NONCE_PREFIX) : len(_NONCE_PREFIX) + 16]
        try:
            issued = int(stamp, 16)
        except ValueError:
            return False
        if not hmac.compare_digest(nonce[len(_NONCE_PREFIX) + 16 :], self._mac(issued, addr)):
            return False
        return 0 <= now - issued < self.lifetime

    @staticmethod
    def announces_features(nonce: str) -> bool:
        return nonce.startswith(_NONCE_PREFIX)


class Credentials:
    """Static users and TURN REST API secrets of one realm."""

    KEY_CACHE_SIZE = 10000

    def __init__(self, realm: str, users: dict[str, str] | None = None, secrets: Iterable[str] = ()) -> None:
        self.realm = realm
        self.users = dict(users or {})
        self.secrets = tuple(secrets)
        self._keys: dict[tuple[str, int, str], bytes] = {}

    def keys(self, username: str, algorithm: int, unix_now: float) -> list[bytes]:
        """The candidate integrity keys for ``username`` (empty if it is unknown or expired).

        A static user has one; a REST API username has one per secret, so
        that secrets can be rotated with the old one still accepted.
        """
        password = self.users.get(username)
        if password is not None:
            return [self._key(username, algorithm, password)]
        if not self.secrets:
            return []
        expiry = rest_api_expiry(username)
        if expiry is None or expiry <= unix_now:
            return []
        return [self._key(username, algorithm, rest_api_password(s, username)) for s in self.secrets]

    def _key(self, username: str, algorithm: int, password: str) -> bytes:
        cache_key = (username, algorithm, password)
        key = self._keys.get(cache_key)
        if key is None:
            key = long_term_key(username, self.realm, password, algorithm)
            if len(self._keys) >= self.KEY_CACHE_SIZE:
                self._keys.clear()
            self._keys[cache_key] = key
        return key
