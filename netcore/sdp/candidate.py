"""The ICE candidate attribute (RFC 8839 section 5.1; TCP candidates, RFC 6544).

This is the one ``Candidate`` type of netcore: the SDP layer reads and writes
``a=candidate`` lines with it and the ICE layer imports it to produce local
candidates and read remote (trickled) ones.

    candidate-attribute = "candidate" ":" foundation SP component-id SP
                          transport SP priority SP connection-address SP
                          port SP cand-type [SP rel-addr] [SP rel-port]
                          *(SP cand-extension)

Extensions (``tcptype``, ``generation``, ``ufrag``, ``network-id``,
``network-cost`` ...) are kept as ordered name/value pairs, so what a browser
sends is written back unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import CandidateError  # re-exported: its home was here

__all__ = ["Candidate", "CandidateError"]


_ICE_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
)


def _digits(text: str, what: str, max_len: int) -> int:
    if not (0 < len(text) <= max_len and text.isascii() and text.isdigit()):
        raise CandidateError(f"bad {what} {text!r}")
    return int(text)


def _port(text: str) -> int:
    value = _digits(text, "port", 5)
    if value > 65535:
        raise CandidateError(f"port {value} out of range")
    return value


class Candidate(NamedTuple):
    """One ICE candidate as carried in SDP (the value after ``candidate:``)."""

    foundation: str
    component: int
    transport: str  # "UDP", "TCP" (case kept as sent)
    priority: int
    address: str  # IP address or FQDN (mDNS ``.local`` names included)
    port: int
    type: str  # host, srflx, prflx, relay
    related_address: str | None = None
    related_port: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()

    # RFC 8839 section 5.1
    @classmethod
    def parse(cls, value: str) -> Candidate:
        """Parse an attribute value (no ``candidate:`` prefix)."""
        bits = value.split(" ")
        if len(bits) < 8:
            raise CandidateError("candidate needs at least 8 fields")
        if bits[6] != "typ":
            raise CandidateError("candidate has no 'typ' at field 7")
        foundation = bits[0]
        if not (0 < len(foundation) <= 32 and _ICE_CHARS.issuperset(foundation)):
            raise CandidateError(f"bad foundation {foundation!r}")
        component = _digits(bits[1], "component-id", 3)
        if not 1 <= component <= 256:
            raise CandidateError(f"component-id {component} out of range")
        transport = bits[2]
        priority = _digits(bits[3], "priority", 10)
        if priority >= 1 << 32:
            raise CandidateError(f"priority {priority} out of range")
        address = bits[4]
        if not address:
            raise CandidateError("empty connection-address")
        port = _port(bits[5])
        cand_type = bits[7]
        if not transport or not cand_type:
            raise CandidateError("empty transport or candidate type")
        rest = bits[8:]
        if len(rest) % 2:
            raise CandidateError("extension without a value")
        related_address = related_port = None
        i = 0
        if rest[:1] == ["raddr"]:
            related_address = rest[1]
            if not related_address:
                raise CandidateError("empty raddr")
            i = 2
        if rest[i : i + 1] == ["rport"]:
            related_port = _port(rest[i + 1])
            i += 2
        extensions = []
        for j in range(i, len(rest), 2):
            name, ext = rest[j], rest[j + 1]
            if not name or not ext:
                raise CandidateError("empty extension name or value")
            extensions.append((name, ext))
        return cls(
            foundation,
            component,
            transport,
            priority,
            address,
            port,
            cand_type,
            related_address,
            related_port,
            tuple(extensions),
        )

    def __str__(self) -> str:
        parts = [
            self.foundation,
            str(self.component),
            self.transport,
            str(self.priority),
            self.address,
            str(self.port),
            "typ",
            self.type,
        ]
        if self.related_address is not None:
            parts += ("raddr", self.related_address)
        if self.related_port is not None:
            parts += ("rport", str(self.related_port))
        for name, value in self.extensions:
            parts += (name, value)
        return " ".join(parts)

    # Trickle ICE (RFC 8838) carries "candidate:..." strings outside SDP.
    @classmethod
    def from_trickle(cls, text: str) -> Candidate:
        """Parse ``candidate:...`` or ``a=candidate:...`` as trickled."""
        for prefix in ("a=candidate:", "candidate:"):
            if text.startswith(prefix):
                return cls.parse(text[len(prefix) :].rstrip("\r\n"))
        raise CandidateError("trickled candidate must start with 'candidate:'")

    def to_trickle(self) -> str:
        """The ``candidate:...`` string a browser's RTCIceCandidate carries."""
        return "candidate:" + str(self)

    def extension(self, name: str) -> str | None:
        """The value of extension ``name`` or None."""
        for key, value in self.extensions:
            if key == name:
                return value
        return None

    @property
    def tcptype(self) -> str | None:
        """RFC 6544 section 4.5: active, passive or so (TCP candidates only)."""
        return self.extension("tcptype")

    @property
    def is_tcp(self) -> bool:
        return self.transport.upper() == "TCP"

    @property
    def ufrag(self) -> str | None:
        """The ``ufrag`` extension browsers add to tell ICE generations apart."""
        return self.extension("ufrag")
