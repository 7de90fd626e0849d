"""The DTLS layer's errors, below :mod:`netcore.errors`.

Both are the peer's fault (:class:`~netcore.errors.ParseError`), and neither
leaves :meth:`~netcore.dtls.connection.DtlsConnection.handle_datagram`: a
malformed record is counted and dropped; a handshake the peer broke ends in
a fatal alert and a ``HandshakeFailed`` event.
"""

from __future__ import annotations

from netcore.errors import ParseError

__all__ = ["DtlsParseError", "HandshakeError"]


class DtlsParseError(ParseError):
    """A DTLS record or handshake message is malformed."""


class HandshakeError(DtlsParseError):
    """The peer broke the handshake; carries the alert description to send.

    Internal to the core: :class:`~netcore.dtls.connection.DtlsConnection`
    catches it, sends the fatal alert and reports ``HandshakeFailed``.  It is
    a :class:`DtlsParseError` (the peer's input was wrong, if well framed),
    so code that catches the layer's parse error catches it too; the core
    catches it first, because it ends the handshake where a bad record is
    only dropped.
    """

    def __init__(self, alert: int, reason: str) -> None:
        super().__init__(reason)
        self.alert = alert
        self.reason = reason
