"""Errors of the STUN layer."""

from netcore.errors import NetcoreError, ParseError


class StunParseError(ParseError):
    """A datagram or attribute value is not well-formed STUN (RFC 8489)."""


class StunTransactionError(NetcoreError):
    """A client transaction ended without a success response.

    ``response`` is the error response when the server answered one, else
    ``None`` (the transaction timed out).
    """

    def __init__(self, message: str, response: object | None = None) -> None:
        super().__init__(message)
        self.response = response
