"""What stands between the open port and the expensive parts: admission rules.

Plain objects with time passed in, owned by the WebSocket adapter:

- :class:`LoginLimiter` -- failed logins counted per account *and* per source
  address (not per connection: reconnecting must not reset them), with an
  exponential back-off once a few free failures are spent;
- :class:`HashGate` -- a bound on password hashing (scrypt) in flight, so
  that guessers queue behind a small limit and are refused beyond it instead
  of taking every core from real logins;
- :class:`SourceCounter` -- open connections per source address;
- :func:`origin_allowed` -- the ``Origin`` rule for WebSocket upgrades.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["LoginLimiter", "HashGate", "SourceCounter", "origin_allowed"]


@dataclass(slots=True)
class _Failures:
    count: int
    last: float
    blocked_until: float


class LoginLimiter:
    """Back-off for failed logins, keyed by account and by source address.

    The first ``free`` failures of a key cost nothing; each one after that
    blocks the key for ``base * 2**(extra - 1)`` seconds (at most ``cap``).
    A key forgets its failures ``forget`` seconds after the last one, and a
    success clears the account's record.  At most ``max_keys`` keys are kept
    (the oldest go first), so that spoofing many names cannot grow memory.
    """

    def __init__(self, free: int = 5, base: float = 1.0, cap: float = 60.0,
                 forget: float = 900.0, max_keys: int = 100_000) -> None:
        self.free = free
        self.base = base
        self.cap = cap
        self.forget = forget
        self.max_keys = max_keys
        self._keys: OrderedDict[tuple[str, str], _Failures] = OrderedDict()

    def retry_after(self, account: str, source: str, now: float) -> float:
        """Seconds before a login for ``account`` from ``source`` may be tried (0: now)."""
        wait = 0.0
        for key in (("account", account), ("source", source)):
            record = self._record(key, now)
            if record is not None:
                wait = max(wait, record.blocked_until - now)
        return wait

    def failed(self, account: str, source: str, now: float) -> None:
        for key in (("account", account), ("source", source)):
            record = self._record(key, now) or _Failures(0, now, now)
            record.count += 1
            record.last = now
            extra = record.count - self.free
            if extra > 0:
                record.blocked_until = now + min(self.cap, self.base * 2 ** (extra - 1))
            self._keys[key] = record
            self._keys.move_to_end(key)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)

    def succeeded(self, account: str) -> None:
        self._keys.pop(("account", account), None)

    def _record(self, key: tuple[str, str], now: float) -> _Failures | None:
        record = self._keys.get(key)
        if record is not None and now - record.last > self.forget and now >= record.blocked_until:
            del self._keys[key]
            return None
        return record


class HashGate:
    """At most ``workers`` hashes running and ``queue`` waiting; the rest are refused.

    The adapter runs every scrypt through :meth:`admit`/:meth:`release` on an
    executor of ``workers`` threads: the work in flight stays bounded however
    many connections ask at once.
    """

    def __init__(self, workers: int, queue: int) -> None:
        self.workers = workers
        self.limit = workers + queue
        self.in_flight = 0
        self.refused = 0

    def admit(self) -> bool:
        if self.in_flight >= self.limit:
            self.refused += 1
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1


class SourceCounter:
    """Open connections per source address, with a cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: dict[str, int] = {}

    def add(self, source: str) -> bool:
        """Count a connection from ``source``; False (and not counted) if at the cap."""
        count = self._open.get(source, 0)
        if count >= self.cap:
            return False
        self._open[source] = count + 1
        return True

    def remove(self, source: str) -> None:
        count = self._open.get(source, 0) - 1
        if count > 0:
            self._open[source] = count
        else:
            self._open.pop(source, None)


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...] | list[str]) -> bool:
    """Whether a WebSocket upgrade with this ``Origin`` may proceed.

    Browsers always send ``Origin`` on a WebSocket upgrade (RFC 6455 section
    4.1, item 8); programs that are not browsers may leave it out, and cannot
    be stopped by it anyway, so no ``Origin`` passes.  A browser's upgrade
    passes when it comes from the page this daemon serves (the origin's
    host:port is the ``Host`` the request was sent to) or from a configured
    origin; any other page open in a local browser is refused (RFC 6455
    section 10.2).
    """
    if origin is None:
        return True
    origin = origin.strip()
    if origin.rstrip("/").lower() in {o.rstrip("/").lower() for o in allowed}:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc or host is None:
        return False
    return parts.netloc.lower() == host.strip().lower()
