"""What the TURN adapters do when the core raises on one input.

The core never raises for malformed remote input; an exception out of it is
a bug of ours. The adapters serve datagrams in batches (a readable callback
reads many, the compiled data path hands many back), so an exception must
not end the batch: the rest of it, and the flush that sends the answers,
still happen. :class:`FaultLog` counts such exceptions and logs at most one
line per ``interval`` seconds (with how many were not logged), never a
traceback per datagram, so that a flood of one bad input cannot flood the
log or the disk.
"""

from __future__ import annotations

import logging

__all__ = ["FaultLog"]

log = logging.getLogger("netcore.turn")


class FaultLog:
    """Counts failures of one kind (an exception on one input, a socket not opened); one log line per interval."""

    __slots__ = ("interval", "what", "level", "count", "_next_line", "_unlogged")

    def __init__(self, interval: float = 10.0, what: str = "input", level: int = logging.ERROR) -> None:
        self.interval = interval
        self.what = what
        self.level = level
        self.count = 0
        self._next_line = float("-inf")
        self._unlogged = 0

    def record(self, exc: BaseException, source: object, now: float) -> None:
        """One input from ``source`` raised ``exc``: count it, and log it unless a line went out recently."""
        self.count += 1
        if now < self._next_line:
            self._unlogged += 1
            return
        text = str(exc)
        if len(text) > 120:
            text = text[:117] + "..."
        log.log(self.level, "%s %s: %s: %s (%d more not logged since the last line)",
                  self.what, _where(source), type(exc).__name__, text, self._unlogged)
        self._unlogged = 0
        self._next_line = now + self.interval


def _where(source: object) -> str:
    if isinstance(source, tuple) and len(source) >= 2:
        host, port = source[0], source[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(source)
