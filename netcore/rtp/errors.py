"""The parse errors of the RTP layer (below ``netcore.errors.ParseError``)."""

from netcore.errors import ParseError

__all__ = ["RtpParseError", "RtcpParseError"]


class RtpParseError(ParseError):
    """Malformed RTP from the network: header, extension or payload format."""


class RtcpParseError(ParseError):
    """Malformed RTCP from the network.

    ``packets`` holds the sub-packets of a compound packet that parsed
    before the bad one, so a receiver may still use them (RFC 3550
    section 6.1 lets it ignore what it cannot understand).
    """

    def __init__(self, message: str, packets: tuple = ()) -> None:
        super().__init__(message)
        self.packets = packets
