"""Typed values of SDP lines and of the attributes WebRTC uses.

Each typed value is an immutable ``NamedTuple`` with a ``parse`` classmethod
(the text after ``a=name:``, or after ``x=`` for a field line) and a
``__str__`` that writes it back.  ``ATTRIBUTES`` maps an attribute name to
its ``(parse, format)`` pair; attributes not in the table keep their raw text.
Parsers raise ``ValueError`` with a reason; the description parser turns that
into an ``SdpParseError`` naming the line.
"""

from __future__ import annotations

import re
from typing import Callable, NamedTuple

from .candidate import Candidate

__all__ = [
    "ATTRIBUTES",
    "DIRECTIONS",
    "FLAGS",
    "Bandwidth",
    "Connection",
    "Extmap",
    "Fingerprint",
    "Fmtp",
    "Group",
    "ImageAttr",
    "Media",
    "Msid",
    "Origin",
    "Rid",
    "Rtcp",
    "RtcpFb",
    "Rtpmap",
    "Simulcast",
    "SimulcastRid",
    "Ssrc",
    "SsrcGroup",
    "Timing",
    "is_uint",
    "parse_fmtp_parameters",
]


_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__


def is_uint(text: str | None) -> bool:
    """ASCII digits only: ``str.isdigit`` alone also takes "²" and "٣"."""
    return bool(text) and text.isascii() and text.isdigit()  # type: ignore[union-attr]


def _uint(text: str, what: str, maximum: int = (1 << 64) - 1) -> int:
    if not is_uint(text):
        raise ValueError(f"bad {what} {text!r}")
    value = int(text)
    if value > maximum:
        raise ValueError(f"{what} {value} out of range")
    return value


def _token(text: str, what: str) -> str:
    if not text or " " in text:
        raise ValueError(f"bad {what} {text!r}")
    return text


# ---------------------------------------------------------------- field lines


class Origin(NamedTuple):
    """o= (RFC 8866 section 5.2)."""

    username: str
    session_id: int
    session_version: int
    net_type: str = "IN"
    address_type: str = "IP4"
    address: str = "127.0.0.1"

    @classmethod
    def parse(cls, text: str) -> Origin:
        bits = text.split(" ")
        if len(bits) != 6:
            raise ValueError("o= needs 6 fields")
        for bit in bits:
            _token(bit, "o= field")
        return cls(
            bits[0],
            _uint(bits[1], "sess-id"),
            _uint(bits[2], "sess-version"),
            bits[3],
            bits[4],
            bits[5],
        )

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.net_type} {self.address_type} {self.address}"
        )


class Connection(NamedTuple):
    """c= (RFC 8866 section 5.7); ``address`` keeps any /ttl/count suffix."""

    net_type: str
    address_type: str
    address: str

    @classmethod
    def parse(cls, text: str) -> Connection:
        bits = text.split(" ")
        if len(bits) != 3 or not all(bits):
            raise ValueError("c= needs 3 fields")
        return cls(*bits)

    def __str__(self) -> str:
        return f"{self.net_type} {self.address_type} {self.address}"


class Bandwidth(NamedTuple):
    """b= (RFC 8866 section 5.8): AS in kbit/s, TIAS in bit/s (RFC 3890)."""

    type: str
    bandwidth: int

    @classmethod
    def parse(cls, text: str) -> Bandwidth:
        bwtype, sep, value = text.partition(":")
        if not sep or not bwtype:
            raise ValueError("b= needs <bwtype>:<bandwidth>")
        return cls(bwtype, _uint(value, "bandwidth"))

    def __str__(self) -> str:
        return f"{self.type}:{self.bandwidth}"


class Timing(NamedTuple):
    """t= (RFC 8866 section 5.9)."""

    start: int = 0
    stop: int = 0

    @classmethod
    def parse(cls, text: str) -> Timing:
        bits = text.split(" ")
        if len(bits) != 2:
            raise ValueError("t= needs 2 fields")
        return cls(_uint(bits[0], "start time"), _uint(bits[1], "stop time"))

    def __str__(self) -> str:
        return f"{self.start} {self.stop}"


class Media(NamedTuple):
    """m= (RFC 8866 section 5.14)."""

    kind: str  # audio, video, application ...
    port: int
    protocol: str
    formats: tuple[str, ...]
    port_count: int | None = None

    @classmethod
    def parse(cls, text: str) -> Media:
        bits = text.split(" ")
        if len(bits) < 3:
            raise ValueError("m= needs <media> <port> <proto> [<fmt> ...]")
        port_text, slash, count = bits[1].partition("/")
        port = _uint(port_text, "port", 65535)
        port_count = _uint(count, "port count", 65535) if slash else None
        for bit in bits:
            _token(bit, "m= field")
        return cls(bits[0], port, bits[2], tuple(bits[3:]), port_count)

    def __str__(self) -> str:
        port = str(self.port)
        if self.port_count is not None:
            port += f"/{self.port_count}"
        return " ".join((self.kind, port, self.protocol) + self.formats)


def _version(text: str) -> int:
    if text != "0":
        raise ValueError("v= must be 0")
    return 0


# ----------------------------------------------------------------- attributes


class Rtpmap(NamedTuple):
    """a=rtpmap (RFC 8866 section 6.6)."""

    payload_type: int
    encoding_name: str
    clock_rate: int
    channels: int | None = None  # the encoding parameters

    @classmethod
    def parse(cls, text: str) -> Rtpmap:
        # Fast path: one compound check, then the careful path for reasons.
        pt, sep, encoding = text.partition(" ")
        bits = encoding.split("/")
        n = len(bits)
        if (
            sep
            and (n == 2 or n == 3)
            and bits[0]
            and pt.isdigit()
            and pt.isascii()
            and len(pt) <= 3
            and bits[1].isdigit()
            and bits[1].isascii()
            and " " not in encoding
            and (n == 2 or (bits[2].isdigit() and bits[2].isascii()))
            and int(pt) <= 127
        ):
            channels = int(bits[2]) if n == 3 else None
            return _new(cls, (int(pt), bits[0], int(bits[1]), channels))
        return cls._parse_slowly(text)

    @classmethod
    def _parse_slowly(cls, text: str) -> Rtpmap:
        pt, sep, encoding = text.partition(" ")
        if not sep:
            raise ValueError("rtpmap needs <payload type> <encoding>")
        bits = encoding.split("/")
        n = len(bits)
        if not 2 <= n <= 3 or not bits[0] or " " in encoding:
            raise ValueError("rtpmap encoding must be name/clock[/params]")
        channels = _uint(bits[2], "encoding parameters") if n == 3 else None
        return _new(
            cls,
            (
                _uint(pt, "payload type", 127),
                bits[0],
                _uint(bits[1], "clock rate"),
                channels,
            ),
        )

    def __str__(self) -> str:
        text = f"{self.payload_type} {self.encoding_name}/{self.clock_rate}"
        if self.channels is not None:
            text += f"/{self.channels}"
        return text


def parse_fmtp_parameters(text: str) -> dict[str, str | None]:
    """``key=value;key2=value2`` as an ordered dict (value None for a bare key).

    Keys are case-insensitive by RFC 8866 section 6.15 for most codecs; we
    keep what was sent and compare keys lower-cased in negotiation.
    """
    result: dict[str, str | None] = {}
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        result[key.strip()] = value.strip() if sep else None
    return result


class Fmtp(NamedTuple):
    """a=fmtp (RFC 8866 section 6.15): format and its parameter string."""

    format: str
    parameters: str

    @classmethod
    def parse(cls, text: str) -> Fmtp:
        fmt, _, params = text.partition(" ")
        if not fmt:
            raise ValueError("fmtp needs <format>")
        return _new(cls, (fmt, params))

    @classmethod
    def from_dict(cls, fmt: int | str, params: dict[str, str | None]) -> Fmtp:
        items = (k if v is None else f"{k}={v}" for k, v in params.items())
        return cls(str(fmt), ";".join(items))

    def to_dict(self) -> dict[str, str | None]:
        return parse_fmtp_parameters(self.parameters)

    def __str__(self) -> str:
        return f"{self.format} {self.parameters}"


class RtcpFb(NamedTuple):
    """a=rtcp-fb (RFC 4585 section 4.2): ``nack``, ``nack pli``, ``goog-remb``."""

    format: str  # payload type or "*"
    type: str
    parameter: str | None = None

    @classmethod
    def parse(cls, text: str) -> RtcpFb:
        bits = text.split(" ", 2)
        if len(bits) < 2 or not bits[0] or not bits[1]:
            raise ValueError("rtcp-fb needs <format> <type>")
        if len(bits) == 2:
            bits.append(None)
        return _new(cls, bits)

    def __str__(self) -> str:
        if self.parameter is None:
            return f"{self.format} {self.type}"
        return f"{self.format} {self.type} {self.parameter}"


_EXTMAP_DIRECTIONS = frozenset(("sendrecv", "sendonly", "recvonly", "inactive"))


class Extmap(NamedTuple):
    """a=extmap (RFC 8285 section 5)."""

    id: int
    uri: str
    direction: str | None = None
    attributes: str | None = None

    @classmethod
    def parse(cls, text: str) -> Extmap:
        bits = text.split(" ", 2)
        n = len(bits)
        if n >= 2 and bits[1]:  # fast path; the rest below names the reason
            ident, slash, direction = bits[0].partition("/")
            if (
                ident.isdigit()
                and ident.isascii()
                and len(ident) <= 4
                and 0 < int(ident) <= 4095
                and (not slash or direction in _EXTMAP_DIRECTIONS)
            ):
                attributes = bits[2] if n == 3 else None
                return _new(cls, (int(ident), bits[1], direction or None, attributes))
        if len(bits) < 2:
            raise ValueError("extmap needs <id>[/<direction>] <uri>")
        ident, slash, direction = bits[0].partition("/")
        if slash and direction not in _EXTMAP_DIRECTIONS:
            raise ValueError(f"bad extmap direction {direction!r}")
        ext_id = _uint(ident, "extmap id", 4095)
        if ext_id == 0:
            raise ValueError("extmap id 0 is reserved")
        if not bits[1]:
            raise ValueError("extmap needs a uri")
        attributes = bits[2] if len(bits) == 3 else None
        return _new(cls, (ext_id, bits[1], direction or None, attributes))

    def __str__(self) -> str:
        text = str(self.id)
        if self.direction is not None:
            text += "/" + self.direction
        text += " " + self.uri
        if self.attributes is not None:
            text += " " + self.attributes
        return text


class Ssrc(NamedTuple):
    """a=ssrc (RFC 5576 section 4.1): ``<ssrc> <attribute>[:<value>]``."""

    ssrc: int
    attribute: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Ssrc:
        ssrc, sep, rest = text.partition(" ")
        if not sep:
            raise ValueError("ssrc needs <ssrc> <attribute>")
        name, colon, value = rest.partition(":")
        if not name or " " in name:
            raise ValueError(f"bad ssrc attribute {name!r}")
        return _new(
            cls, (_uint(ssrc, "ssrc", 0xFFFFFFFF), name, value if colon else None)
        )

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.ssrc} {self.attribute}"
        return f"{self.ssrc} {self.attribute}:{self.value}"


class SsrcGroup(NamedTuple):
    """a=ssrc-group (RFC 5576 section 4.2): FID (RTX), SIM, FEC-FR."""

    semantics: str
    ssrcs: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> SsrcGroup:
        bits = text.split(" ")
        ssrcs = tuple(_uint(b, "ssrc", 0xFFFFFFFF) for b in bits[1:])
        return cls(_token(bits[0], "semantics"), ssrcs)

    def __str__(self) -> str:
        return " ".join((self.semantics, *map(str, self.ssrcs)))


class Msid(NamedTuple):
    """a=msid (RFC 8830 section 2): media stream id and track id."""

    stream_id: str
    track_id: str | None = None

    @classmethod
    def parse(cls, text: str) -> Msid:
        bits = text.split(" ")
        if len(bits) > 2:
            raise ValueError("msid has at most 2 fields")
        track = _token(bits[1], "track id") if len(bits) == 2 else None
        return cls(_token(bits[0], "stream id"), track)

    def __str__(self) -> str:
        if self.track_id is None:
            return self.stream_id
        return f"{self.stream_id} {self.track_id}"


class Group(NamedTuple):
    """a=group (RFC 5888 section 5; BUNDLE, RFC 9143)."""

    semantics: str
    mids: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Group:
        bits = text.split(" ")
        for mid in bits[1:]:
            _token(mid, "identification-tag")
        return cls(_token(bits[0], "semantics"), tuple(bits[1:]))

    def __str__(self) -> str:
        return " ".join((self.semantics, *self.mids))


class Rtcp(NamedTuple):
    """a=rtcp (RFC 3605): port and optional address."""

    port: int
    net_type: str | None = None
    address_type: str | None = None
    address: str | None = None

    @classmethod
    def parse(cls, text: str) -> Rtcp:
        bits = text.split(" ")
        port = _uint(bits[0], "rtcp port", 65535)
        if len(bits) == 1:
            return cls(port)
        if len(bits) != 4 or not all(bits):
            raise ValueError("rtcp needs <port> [<nettype> <addrtype> <address>]")
        return cls(port, bits[1], bits[2], bits[3])

    def __str__(self) -> str:
        if self.address is None:
            return str(self.port)
        return f"{self.port} {self.net_type} {self.address_type} {self.address}"


# RFC 8122 section 5: fingerprint = 2UHEX *(":" 2UHEX); lower case accepted.
_HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*")


class Fingerprint(NamedTuple):
    """a=fingerprint (RFC 8122 section 5): hash function and colon hex."""

    hash_function: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        bits = text.split(" ")
        if len(bits) != 2:
            raise ValueError("fingerprint needs <hash-func> <fingerprint>")
        if not _HEX_PAIRS.fullmatch(bits[1]):
            raise ValueError("fingerprint must be colon-separated hex pairs")
        return _new(cls, (_token(bits[0], "hash function"), bits[1]))

    def __str__(self) -> str:
        return f"{self.hash_function} {self.value}"

    def digest(self) -> bytes:
        return bytes.fromhex(self.value.replace(":", ""))


class SimulcastRid(NamedTuple):
    """One rid in a simulcast alternative list; ``~`` marks it paused."""

    rid: str
    paused: bool = False

    def __str__(self) -> str:
        return ("~" if self.paused else "") + self.rid


SimulcastStreams = tuple[tuple[SimulcastRid, ...], ...]


def _simulcast_list(text: str) -> SimulcastStreams:
    streams = []
    for alt_list in text.split(";"):
        alts = []
        for sc_id in alt_list.split(","):
            paused = sc_id.startswith("~")
            rid = sc_id[1:] if paused else sc_id
            if not rid or not _RID_ID.fullmatch(rid):
                raise ValueError(f"bad simulcast rid {sc_id!r}")
            alts.append(SimulcastRid(rid, paused))
        streams.append(tuple(alts))
    return tuple(streams)


def _simulcast_text(streams: SimulcastStreams) -> str:
    return ";".join(",".join(map(str, alts)) for alts in streams)


class Simulcast(NamedTuple):
    """a=simulcast (RFC 8853 section 5.1): send and receive stream lists."""

    send: SimulcastStreams = ()
    recv: SimulcastStreams = ()
    recv_first: bool = False  # write "recv ... send ..." as it came

    @classmethod
    def parse(cls, text: str) -> Simulcast:
        bits = text.split(" ")
        if len(bits) not in (2, 4):
            raise ValueError("simulcast needs send/recv followed by a list")
        lists: dict[str, SimulcastStreams] = {}
        for i in range(0, len(bits), 2):
            direction = bits[i]
            if direction not in ("send", "recv") or direction in lists:
                raise ValueError(f"bad simulcast direction {direction!r}")
            lists[direction] = _simulcast_list(bits[i + 1])
        recv_first = len(bits) == 4 and bits[0] == "recv"
        return cls(lists.get("send", ()), lists.get("recv", ()), recv_first)

    def __str__(self) -> str:
        parts = []
        if self.send:
            parts.append("send " + _simulcast_text(self.send))
        if self.recv:
            parts.append("recv " + _simulcast_text(self.recv))
        if self.recv_first:
            parts.reverse()
        return " ".join(parts)

    def rids(self, direction: str) -> list[str]:
        """First alternative of each stream for "send" or "recv"."""
        streams = self.send if direction == "send" else self.recv
        return [alts[0].rid for alts in streams]


_RID_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")


class Rid(NamedTuple):
    """a=rid (RFC 8851 section 10): id, direction and restrictions."""

    id: str
    direction: str  # send or recv
    parameters: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Rid:
        bits = text.split(" ")
        if len(bits) not in (2, 3):
            raise ValueError("rid needs <rid-id> <send|recv> [params]")
        if not _RID_ID.fullmatch(bits[0]):
            raise ValueError(f"bad rid-id {bits[0]!r}")
        if bits[1] not in ("send", "recv"):
            raise ValueError(f"bad rid direction {bits[1]!r}")
        params: list[tuple[str, str | None]] = []
        if len(bits) == 3:
            for item in bits[2].split(";"):
                key, sep, value = item.partition("=")
                if not key:
                    raise ValueError("empty rid parameter")
                if key == "pt" and (
                    value is None or not all(is_uint(p) for p in value.split(","))
                ):
                    raise ValueError(f"bad rid pt list {value!r}")
                params.append((key, value if sep else None))
        return cls(bits[0], bits[1], tuple(params))

    def __str__(self) -> str:
        text = f"{self.id} {self.direction}"
        if self.parameters:
            items = (k if v is None else f"{k}={v}" for k, v in self.parameters)
            text += " " + ";".join(items)
        return text

    def parameter(self, name: str) -> str | None:
        for key, value in self.parameters:
            if key == name:
                return value
        return None

    @property
    def payload_types(self) -> tuple[int, ...]:
        """The ``pt=`` restriction (RFC 8851 section 4), empty if none."""
        value = self.parameter("pt")
        return tuple(int(p) for p in value.split(",")) if value else ()


_IMAGEATTR_SET = re.compile(r"\[([^\[\]]*(?:\[[^\[\]]*\][^\[\]]*)*)\]")
_IMAGEATTR_VALUE = re.compile(
    r"\d+|\[\d+:(?:\d+:)?\d+\]|\[\d+(?:,\d+)+\]|\[\d*\.?\d+-\d*\.?\d+\]|"
    r"\d*\.\d+|\[\d*\.?\d+(?:,\d*\.?\d+)+\]"
)


def _imageattr_sets(text: str) -> list[dict[str, str]]:
    """Parse ``[x=..,y=..,...] [x=...]`` into ordered key/value dicts."""
    if text == "*":
        return []
    sets = []
    pos = 0
    for match in _IMAGEATTR_SET.finditer(text):
        if text[pos : match.start()].strip(" "):
            raise ValueError("junk between imageattr sets")
        pos = match.end()
        body = match.group(1)
        entries: dict[str, str] = {}
        # split on commas outside brackets
        depth = 0
        start = 0
        for i, ch in enumerate(body + ","):
            if ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
            elif ch == "," and depth == 0:
                key, sep, value = body[start:i].partition("=")
                if not sep or not _IMAGEATTR_VALUE.fullmatch(value):
                    raise ValueError(f"bad imageattr entry {body[start:i]!r}")
                entries[key] = value
                start = i + 1
        if "x" not in entries or "y" not in entries:
            raise ValueError("imageattr set needs x and y")
        sets.append(entries)
    if not sets or text[pos:].strip(" "):
        raise ValueError("bad imageattr set list")
    return sets


def _largest(value: str) -> int:
    return max(int(n) for n in re.findall(r"\d+", value.split(":")[-1]))


class ImageAttr(NamedTuple):
    """a=imageattr (RFC 6236 section 3.1): resolutions per direction."""

    format: str  # payload type or "*"
    send: str | None = None  # "*" or "[x=..,y=..] ..."
    recv: str | None = None
    recv_first: bool = False

    @classmethod
    def parse(cls, text: str) -> ImageAttr:
        fmt, sep, rest = text.partition(" ")
        _token(fmt, "format")
        found: dict[str, str] = {}
        marks = [
            (m.start(), m.group(1)) for m in re.finditer(r"(?:^| )(send|recv) ", rest)
        ]
        if not marks or marks[0][0] != 0 or len(marks) > 2:
            raise ValueError("imageattr needs send and/or recv")
        for n, (start, direction) in enumerate(marks):
            end = marks[n + 1][0] if n + 1 < len(marks) else len(rest)
            value = rest[start:end].strip(" ")[5:]
            if direction in found:
                raise ValueError("imageattr direction twice")
            _imageattr_sets(value)
            found[direction] = value
        return cls(fmt, found.get("send"), found.get("recv"), marks[0][1] == "recv")

    def __str__(self) -> str:
        parts = []
        if self.send is not None:
            parts.append("send " + self.send)
        if self.recv is not None:
            parts.append("recv " + self.recv)
        if self.recv_first:
            parts.reverse()
        return self.format + " " + " ".join(parts)

    def max_resolution(self, direction: str) -> tuple[int, int] | None:
        """Largest (width, height) allowed in ``direction``; None if any."""
        text = self.send if direction == "send" else self.recv
        if text is None or text == "*":
            return None
        sets = _imageattr_sets(text)
        return (
            max(_largest(s["x"]) for s in sets),
            max(_largest(s["y"]) for s in sets),
        )


# ---------------------------------------------------------------- the table

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

# Property attributes (no value).
FLAGS = frozenset(
    DIRECTIONS
    + (
        "rtcp-mux",
        "rtcp-mux-only",
        "rtcp-rsize",
        "ice-lite",
        "end-of-candidates",
        "extmap-allow-mixed",
    )
)


def _setup(text: str) -> str:
    # RFC 4145 section 4
    if text not in ("active", "passive", "actpass", "holdconn"):
        raise ValueError(f"bad setup role {text!r}")
    return text


def _words(text: str) -> tuple[str, ...]:
    words = tuple(text.split(" "))
    if not all(words):
        raise ValueError("empty token in list")
    return words


def _commas(text: str) -> tuple[str, ...]:
    words = tuple(text.split(","))
    if not all(words):
        raise ValueError("empty token in list")
    return words


def _framerate(text: str) -> float:
    # RFC 8866 section 6.8: <frame rate> as a decimal number
    if not re.fullmatch(r"\d+(?:\.\d+)?", text):
        raise ValueError(f"bad framerate {text!r}")
    return float(text)


def _format_number(value: float) -> str:
    return f"{value:g}"


Parse = Callable[[str], object]
Format = Callable[[object], str]

# attribute name -> (parse, format)
ATTRIBUTES: dict[str, tuple[Parse, Format]] = {
    "rtpmap": (Rtpmap.parse, str),
    "fmtp": (Fmtp.parse, str),
    "rtcp-fb": (RtcpFb.parse, str),
    "extmap": (Extmap.parse, str),
    "ssrc": (Ssrc.parse, str),
    "ssrc-group": (SsrcGroup.parse, str),
    "msid": (Msid.parse, str),
    "mid": (lambda t: _token(t, "mid"), str),
    "group": (Group.parse, str),
    "rtcp": (Rtcp.parse, str),
    "ice-ufrag": (lambda t: _token(t, "ice-ufrag"), str),
    "ice-pwd": (lambda t: _token(t, "ice-pwd"), str),
    "ice-options": (_words, " ".join),
    "candidate": (Candidate.parse, str),
    "fingerprint": (Fingerprint.parse, str),
    "setup": (_setup, str),
    "tls-id": (lambda t: _token(t, "tls-id"), str),
    "simulcast": (Simulcast.parse, str),
    "rid": (Rid.parse, str),
    "sctp-port": (lambda t: _uint(t, "sctp-port", 65535), str),
    "max-message-size": (lambda t: _uint(t, "max-message-size"), str),
    "imageattr": (ImageAttr.parse, str),
    "framerate": (_framerate, _format_number),
    "content": (_commas, ",".join),
}

# line type -> (parse, format) for the field lines we type.
FIELDS: dict[str, tuple[Parse, Format]] = {
    "v": (_version, str),
    "o": (Origin.parse, str),
    "c": (Connection.parse, str),
    "b": (Bandwidth.parse, str),
    "t": (Timing.parse, str),
    "m": (Media.parse, str),
}
