"""Errors of the SDP layer, below ``netcore.errors.ParseError``: both are the
peer's fault (a description that does not parse, or one that parses but
cannot be negotiated)."""

from __future__ import annotations

from netcore.errors import ParseError

__all__ = ["CandidateError", "NegotiationError", "SdpParseError"]


class SdpParseError(ParseError):
    """A session description that does not follow RFC 8866.

    ``line_number`` is 1-based (0 when the problem is not one line's);
    ``reason`` says what is wrong.
    """

    def __init__(self, line_number: int, reason: str) -> None:
        self.line_number = line_number
        self.reason = reason
        where = f"line {line_number}: " if line_number else ""
        super().__init__(f"SDP {where}{reason}")


class NegotiationError(ParseError):
    """The peer's description parses but cannot be negotiated: no ICE
    credentials or fingerprint, duplicate mids, extmap ids or payload types,
    dangling references (RTX ``apt``, simulcast rids) ...  The message names
    the offending line where there is one."""


class CandidateError(ParseError, ValueError):
    """A candidate attribute value that does not follow RFC 8839.

    Also a ``ValueError``, as it was before it joined the error tree, so
    callers that catch that keep working.
    """
