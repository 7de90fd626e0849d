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
  computed once per (user, algorithm) and cached in bounded dicts (the users
  are fixed for the object's life: a reload makes a new one).
"""

from __future__ import annotations

import base64
import hmac
import struct
from typing import Iterable

from netcore.stun import attributes
from netcore.stun.attributes import ALGORITHM_MD5, ALGORITHM_SHA256
from netcore.stun.credentials import long_term_key
from netcore.stun.keyed_hmac import KeyedStates, keyed_hmac
from netcore.stun.message import Message
from netcore.turn.credentials import rest_api_expiry, rest_api_password

__all__ = [
    "NonceIssuer",
    "Credentials",
    "Refused",
    "Authenticated",
    "verify_request",
    "UnauthorizedLimiter",
    "PASSWORD_ALGORITHMS",
    "NONCE_COOKIE",
]

NONCE_COOKIE = "obMatJos2"  # RFC 8489 section 9.2
# Security feature set (section 18.1): bit 0, "Password algorithms".
_FEATURES = base64.b64encode(b"\x80\x00\x00").decode("ascii")
_NONCE_PREFIX = NONCE_COOKIE + _FEATURES
_TIME = struct.Struct("!Q")
_NONCE_STATES = KeyedStates("sha256")  # the issuers' keys (one per server)

# What we offer in PASSWORD-ALGORITHMS, in order of preference (section 14.11).
PASSWORD_ALGORITHMS: tuple[tuple[int, bytes], ...] = ((ALGORITHM_SHA256, b""), (ALGORITHM_MD5, b""))
_SUPPORTED_ALGORITHMS = frozenset(a for a, _ in PASSWORD_ALGORITHMS)


class Refused(Exception):
    """Answer the request with this error ``code`` (and ``extra`` attributes)."""

    def __init__(self, code: int, reason: str, extra: list[tuple[int, object]] | None = None) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason
        self.extra = extra or []


class Authenticated:
    """Who sent a request, and the key (and MAC kind) to sign the answer with."""

    __slots__ = ("username", "key", "sha256")

    def __init__(self, username: str, key: bytes, sha256: bool) -> None:
        self.username = username
        self.key = key
        self.sha256 = sha256


def verify_request(request: Message, addr: tuple, now: float, unix_now: float, realm: str,
                   credentials: "Credentials", nonces: "NonceIssuer", integrity: int | None = None,
                   texts: tuple | None = None) -> Authenticated:
    """The long-term credential check of RFC 8489 section 9.2.4; raises :class:`Refused`.

    401 without integrity, with an unknown user or a wrong MAC; 400 when
    USERNAME, REALM or NONCE is missing or the algorithm negotiation does not
    match ours; 438 for a stale nonce (checked after the MAC, so that a 438
    is only told to whoever knows the password). ``integrity`` and ``texts``
    are what :func:`netcore.stun.message.read_request` read of the request, if it did.
    """
    if integrity is None:
        integrity = 2 if request.has_integrity_sha256 else 1 if request.has_integrity else 0
    if not integrity:
        raise Refused(401, "Unauthorized")
    sha256 = integrity == 2
    if texts is None:
        texts = request.long_term_credentials()  # raises the StunParseError of a text that is not UTF-8
    username, request_realm, nonce, algorithms = texts
    if username is None or request_realm is None or nonce is None:
        raise Refused(400, "Bad Request")
    if request_realm != realm:
        raise Refused(401, "Unauthorized")
    if algorithms:
        algorithm = _password_algorithm(request, nonce)
    else:
        algorithm = ALGORITHM_MD5  # section 9.2.4: neither attribute, as if MD5 (what most clients send)
    check = request.check_integrity_sha256 if sha256 else request.check_integrity
    for key in credentials.keys(username, algorithm, unix_now):
        if check(key):
            break
    else:
        raise Refused(401, "Unauthorized")
    if not nonces.is_fresh(nonce, addr, now):
        raise Refused(438, "Stale Nonce")
    return Authenticated(username, key, sha256)


def _password_algorithm(request: Message, nonce: str) -> int:
    """The algorithm of a request that carries PASSWORD-ALGORITHM or PASSWORD-ALGORITHMS (section 9.2.4)."""
    if not NonceIssuer.announces_features(nonce):
        raise Refused(400, "Bad Request")
    algorithm = request.get(attributes.PASSWORD_ALGORITHM)
    offered = request.get(attributes.PASSWORD_ALGORITHMS)
    if algorithm is None or offered is None or tuple(offered) != PASSWORD_ALGORITHMS \
            or algorithm[0] not in _SUPPORTED_ALGORITHMS:
        raise Refused(400, "Bad Request")  # section 9.2.4: both present, and ours
    return algorithm[0]


class UnauthorizedLimiter:
    """A token bucket per source IP on 401 answers, so that they cannot be used for reflection.

    The table holds at most ``max_sources`` entries (it is cleared when full)
    and :meth:`sweep` drops sources whose bucket has refilled.
    """

    __slots__ = ("rate", "burst", "max_sources", "_buckets")

    def __init__(self, rate: float, burst: float, max_sources: int) -> None:
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self._buckets: dict[str, tuple[float, float]] = {}  # source IP -> (tokens, at)

    def allow(self, source: str, now: float) -> bool:
        tokens, at = self._buckets.get(source, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[source] = (tokens, now)
            return False
        if source not in self._buckets and len(self._buckets) >= self.max_sources:
            self._buckets.clear()
        self._buckets[source] = (tokens - 1, now)
        return True

    def sweep(self, now: float) -> None:
        rate, burst = self.rate, self.burst
        for source in [s for s, (tokens, at) in self._buckets.items() if tokens + (now - at) * rate >= burst]:
            del self._buckets[source]

    def __len__(self) -> int:
        return len(self._buckets)


class NonceIssuer:
    """Stateless nonces bound to a client address and an issue time.

    Checking a nonce recomputes its HMAC; a client sends the same nonce with
    every request for as long as it is fresh, so the issue time of each
    nonce that checked out is remembered per (nonce, address), at most
    ``CACHE_SIZE`` of them (the table is cleared when full). Only nonces that
    verified are kept, and :func:`verify_request` asks only after the
    request's MAC verified, so answering 401 still stores nothing and only
    clients that know a password fill the table. Freshness is still judged
    per request, against the remembered issue time.
    """

    __slots__ = ("key", "lifetime", "_issued")

    CACHE_SIZE = 16384

    def __init__(self, key: bytes, lifetime: float = 3600.0) -> None:
        self.key = key
        self.lifetime = lifetime
        self._issued: dict[tuple[str, tuple], int] = {}  # (nonce, address) -> issue time, nonces that verified

    def _mac(self, issued: int, addr: tuple) -> str:
        material = _TIME.pack(issued) + f"{addr[0]}|{addr[1]}".encode("ascii", "replace")
        return keyed_hmac(self.key, material, _NONCE_STATES)[:12].hex()

    def issue(self, addr: tuple, now: float) -> str:
        issued = int(now)
        return f"{_NONCE_PREFIX}{issued:016x}{self._mac(issued, addr)}"

    def is_fresh(self, nonce: str, addr: tuple, now: float) -> bool:
        """True if we minted ``nonce`` for ``addr`` less than ``lifetime`` seconds ago."""
        issued = self._issued.get((nonce, addr))
        if issued is None:
            issued = self._verify(nonce, addr)
            if issued is None:
                return False
            if len(self._issued) >= self.CACHE_SIZE:
                self._issued.clear()
            self._issued[(nonce, addr)] = issued
        return 0 <= now - issued < self.lifetime

    def _verify(self, nonce: str, addr: tuple) -> int | None:
        """The issue time of ``nonce`` if we minted it for ``addr`` (whatever its age), else None."""
        if len(nonce) != len(_NONCE_PREFIX) + 40 or not nonce.startswith(_NONCE_PREFIX):
            return None
        stamp = nonce[len(_NONCE_PREFIX) : len(_NONCE_PREFIX) + 16]
        try:
            issued = int(stamp, 16)
        except ValueError:
            return None
        if not hmac.compare_digest(nonce[len(_NONCE_PREFIX) + 16 :], self._mac(issued, addr)):
            return None
        return issued

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
        self._static: dict[tuple[str, int], tuple[bytes]] = {}  # static users' keys: (user, algorithm) ->

    def keys(self, username: str, algorithm: int, unix_now: float) -> tuple[bytes, ...]:
        """The candidate integrity keys for ``username`` (empty if it is unknown or expired).

        A static user has one; a REST API username has one per secret, so
        that secrets can be rotated with the old one still accepted.
        """
        keys = self._static.get((username, algorithm))
        if keys is not None:
            return keys
        password = self.users.get(username)
        if password is not None:
            keys = (self._key(username, algorithm, password),)
            if len(self._static) >= self.KEY_CACHE_SIZE:
                self._static.clear()
            self._static[(username, algorithm)] = keys
            return keys
        if not self.secrets:
            return ()
        expiry = rest_api_expiry(username)
        if expiry is None or expiry <= unix_now:
            return ()
        return tuple(self._key(username, algorithm, rest_api_password(s, username)) for s in self.secrets)

    def _key(self, username: str, algorithm: int, password: str) -> bytes:
        cache_key = (username, algorithm, password)
        key = self._keys.get(cache_key)
        if key is None:
            key = long_term_key(username, self.realm, password, algorithm)
            if len(self._keys) >= self.KEY_CACHE_SIZE:
                self._keys.clear()
            self._keys[cache_key] = key
        return key
