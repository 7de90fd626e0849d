"""Errors of the TURN layer, below the one tree of :mod:`netcore.errors`."""

from __future__ import annotations

from netcore.errors import ParseError

__all__ = ["TurnParseError"]


class TurnParseError(ParseError):
    """Bytes from the network that are not valid TURN framing (ChannelData, a stream frame)."""
