"""The DTLS layer's parse error and the handshake failure it maps to."""

from __future__ import annotations

from netcore.errors import ParseError

__all__ = ["DtlsParseError", "HandshakeError"]


class DtlsParseError(ParseError):
    """A DTLS record or handshake message is malformed."""


class HandshakeError(Exception):
    """The peer broke the handshake; carries the alert description to send.

    Internal to the core: :class:`~netcore.dtls.connection.DtlsConnection`
    catches it, sends the fatal alert and reports ``HandshakeFailed``.
    """

    def __init__(self, alert: int, reason: str) -> None:
        super().__init__(reason)
        self.alert = alert
        self.reason = reason
