"""SDP session descriptions (RFC 8866): byte-exact parse and serialize.

A description is its session-level lines followed by media sections, each a
list of ``Line`` objects in the order they came.  A line keeps its original
text, so ``str(parse(text)) == text`` for any CRLF input (bare LF input is
written back with LF); the typed value of every line we understand is parsed
up front, so a malformed line is reported at parse time with its number.

Typed access goes through ``Section.get``/``get_all`` by attribute name and a
few properties for the values every caller wants (mid, direction, codecs ...).
"""

from __future__ import annotations

import re
from typing import Iterator

from netcore.errors import UsageError

from .attributes import (
    ATTRIBUTES,
    DIRECTIONS,
    FIELDS,
    FLAGS,
    Connection,
    Media,
    Origin,
)
from .errors import SdpParseError  # re-exported: its home was here

__all__ = ["Line", "MediaSection", "SdpParseError", "Section", "SessionDescription"]




# RFC 8866 section 9: token-char for attribute names.
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
# RFC 8866 section 9: <type> is one alphabetic character.
_TYPES = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _checked(raw: str) -> str:
    if "\n" in raw or "\r" in raw or "\x00" in raw:
        raise UsageError(f"CR, LF or NUL in SDP line {raw!r}")
    return raw


class Line:
    """One ``<type>=<value>`` line: its text, and its typed value.

    ``raw`` is the line as it came (or as built), without the line ending.
    For ``a=`` lines ``name`` is the attribute name and ``value`` the typed
    value (None for a property attribute such as ``a=rtcp-mux``, the raw text
    for attributes we do not type).  For other lines ``name`` is empty and
    ``value`` is typed (``o``, ``c``, ``b``, ``t``, ``m``, ``v``) or raw.
    """

    __slots__ = ("name", "value", "raw")

    def __init__(self, name: str, value: object, raw: str) -> None:
        self.name = name
        self.value = value
        self.raw = raw

    @property
    def type(self) -> str:
        """The one-letter line type."""
        return self.raw[0]

    @property
    def text(self) -> str:
        """Everything after ``<type>=``."""
        return self.raw[2:]

    @classmethod
    def attribute(cls, name: str, value: object = None) -> Line:
        """Build an ``a=`` line from a typed value (None for a flag)."""
        if value is None:
            return cls(name, None, _checked("a=" + name))
        codec = ATTRIBUTES.get(name)
        text = codec[1](value) if codec else str(value)
        return cls(name, value, _checked(f"a={name}:{text}"))

    @classmethod
    def field(cls, type: str, value: object) -> Line:
        """Build a non-attribute line (``o``, ``c``, ``b``, ``m`` ...)."""
        codec = FIELDS.get(type)
        return cls("", value, _checked(f"{type}={codec[1](value) if codec else value}"))

    def __str__(self) -> str:
        return self.raw

    def __repr__(self) -> str:
        return f"Line({self.raw!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Line) and self.raw == other.raw

    __hash__ = None  # type: ignore[assignment]


class Section:
    """A run of lines: the session level or one media section."""

    __slots__ = ("lines",)

    def __init__(self, lines: list[Line] | None = None) -> None:
        self.lines: list[Line] = lines if lines is not None else []

    # --- attributes by name
    def get(self, name: str, default: object = None) -> object:
        """Typed value of the first ``a=name`` line, else ``default``.

        A property attribute (``a=rtcp-mux``) has the value None: ask
        ``has(name)`` for those.
        """
        for line in self.lines:
            if line.name == name:
                return line.value
        return default

    def get_all(self, name: str) -> list:
        """Typed values of every ``a=name`` line, in order."""
        return [line.value for line in self.lines if line.name == name]

    def has(self, name: str) -> bool:
        return any(line.name == name for line in self.lines)

    def add(self, name: str, value: object = None) -> Line:
        """Append ``a=name[:value]``."""
        line = Line.attribute(name, value)
        self.lines.append(line)
        return line

    def remove(self, name: str) -> int:
        """Drop every ``a=name`` line; returns how many went."""
        before = len(self.lines)
        self.lines = [line for line in self.lines if line.name != name]
        return before - len(self.lines)

    def set(self, name: str, value: object = None) -> None:
        """Replace the first ``a=name`` line in place, or append one."""
        new = Line.attribute(name, value)
        for i, line in enumerate(self.lines):
            if line.name == name:
                self.lines[i] = new
                self.lines[i + 1 :] = [x for x in self.lines[i + 1 :] if x.name != name]
                return
        self.lines.append(new)

    # --- field lines
    def field(self, type: str) -> object:
        """Typed value of the first ``type=`` line, or None."""
        for line in self.lines:
            if line.raw[0] == type and not line.name:
                return line.value
        return None

    def fields(self, type: str) -> list:
        return [
            line.value for line in self.lines if line.raw[0] == type and not line.name
        ]

    # --- common typed views
    @property
    def connection(self) -> Connection | None:
        return self.field("c")  # type: ignore[return-value]

    @property
    def bandwidths(self) -> dict[str, int]:
        """``{"AS": kbit/s, "TIAS": bit/s, ...}`` from the b= lines."""
        return {b.type: b.bandwidth for b in self.fields("b")}

    @property
    def direction(self) -> str | None:
        """sendrecv, sendonly, recvonly, inactive, or None if absent."""
        for line in self.lines:
            if line.name in DIRECTIONS:
                return line.name
        return None

    @property
    def ice_ufrag(self) -> str | None:
        return self.get("ice-ufrag")  # type: ignore[return-value]

    @property
    def ice_pwd(self) -> str | None:
        return self.get("ice-pwd")  # type: ignore[return-value]

    @property
    def fingerprints(self) -> list:
        return self.get_all("fingerprint")

    @property
    def setup(self) -> str | None:
        return self.get("setup")  # type: ignore[return-value]

    def __iter__(self) -> Iterator[Line]:
        return iter(self.lines)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.lines == other.lines  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]


class MediaSection(Section):
    """An ``m=`` line and the lines under it (``lines[0]`` is the m= line)."""

    __slots__ = ()

    @property
    def media(self) -> Media:
        return self.lines[0].value  # type: ignore[return-value]

    @media.setter
    def media(self, value: Media) -> None:
        self.lines[0] = Line.field("m", value)

    @property
    def kind(self) -> str:
        return self.media.kind

    @property
    def port(self) -> int:
        return self.media.port

    @property
    def protocol(self) -> str:
        return self.media.protocol

    @property
    def formats(self) -> tuple[str, ...]:
        return self.media.formats

    @property
    def mid(self) -> str | None:
        return self.get("mid")  # type: ignore[return-value]

    @property
    def rejected(self) -> bool:
        """Port 0 without bundle-only (RFC 8866 section 5.14, RFC 9143)."""
        return self.media.port == 0 and not self.has("bundle-only")

    @property
    def candidates(self) -> list:
        return self.get_all("candidate")

    @property
    def rtcp_mux(self) -> bool:
        return self.has("rtcp-mux")


class SessionDescription(Section):
    """A whole description: session-level lines plus ``media`` sections."""

    __slots__ = ("media", "eol")

    def __init__(
        self,
        lines: list[Line] | None = None,
        media: list[MediaSection] | None = None,
        eol: str = "\r\n",
    ) -> None:
        super().__init__(lines)
        self.media: list[MediaSection] = media if media is not None else []
        self.eol = eol

    @property
    def origin(self) -> Origin:
        return self.field("o")  # type: ignore[return-value]

    @property
    def groups(self) -> list:
        return self.get_all("group")

    def bundle_groups(self) -> list[tuple[str, ...]]:
        return [g.mids for g in self.get_all("group") if g.semantics == "BUNDLE"]

    def section(self, mid: str) -> MediaSection | None:
        for media in self.media:
            if media.mid == mid:
                return media
        return None

    def session_or_media(self, media: MediaSection, name: str) -> object:
        """An attribute that may sit at either level (ICE, DTLS): media wins."""
        value = media.get(name)
        return self.get(name) if value is None else value

    def __str__(self) -> str:
        out = [line.raw for line in self.lines]
        for media in self.media:
            out += [line.raw for line in media.lines]
        out.append("")
        return self.eol.join(out)

    def __repr__(self) -> str:
        return f"SessionDescription({str(self)!r})"

    def to_bytes(self) -> bytes:
        return str(self).encode()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SessionDescription)
            and self.lines == other.lines
            and self.media == other.media
        )

    @classmethod
    def parse(cls, sdp: str | bytes) -> SessionDescription:
        """Parse a description; malformed input raises ``SdpParseError`` only."""
        return parse(sdp)


def _decode(sdp: bytes) -> str:
    try:
        return sdp.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = sdp[: exc.start].count(b"\n") + 1
        raise SdpParseError(line, "not UTF-8") from None


def _parse_line(raw: str, number: int) -> Line:
    """One line without its line ending; the slow path for checks."""
    if len(raw) < 2 or raw[1] != "=":
        raise SdpParseError(number, "expected <type>=<value>")
    kind = raw[0]
    if kind not in _TYPES:
        raise SdpParseError(number, f"bad line type {kind!r}")
    text = raw[2:]
    if "\r" in text or "\x00" in text:
        raise SdpParseError(number, "CR or NUL inside a line")
    if kind == "a":
        return _parse_attribute(text, number)
    return _parse_field(kind, text, number)


def _parse_attribute(text: str, number: int) -> Line:
    name, colon, value = text.partition(":")
    codec = ATTRIBUTES.get(name)
    raw = "a=" + text
    if codec is None:
        if not _TOKEN.fullmatch(name):
            raise SdpParseError(number, f"bad attribute name {name!r}")
        if name in FLAGS:
            if colon:
                raise SdpParseError(number, f"a={name} takes no value")
            return Line(name, None, raw)
        return Line(name, value if colon else None, raw)
    if not colon:
        raise SdpParseError(number, f"a={name} needs a value")
    try:
        return Line(name, codec[0](value), raw)
    except ValueError as exc:
        raise SdpParseError(number, f"a={name}: {exc}") from None


def _parse_field(kind: str, text: str, number: int) -> Line:
    codec = FIELDS.get(kind)
    raw = f"{kind}={text}"
    if codec is None:
        return Line("", text, raw)
    try:
        return Line("", codec[0](text), raw)
    except ValueError as exc:
        raise SdpParseError(number, f"{kind}=: {exc}") from None


# "a=name" -> (parse, name) for the fast path of the parse loop
_TYPED_HEADS = {"a=" + name: (codec[0], name) for name, codec in ATTRIBUTES.items()}
_FLAG_LINES = {"a=" + name: name for name in FLAGS}


def _split(sdp: str) -> tuple[list[str], str, bool]:
    """Lines without endings, the line ending, and whether lines are clean.

    Clean means every line ended the same way and no CR or NUL sits inside a
    line, checked once over the whole text so the per-line loop can skip it.
    """
    crlf = sdp.count("\r\n")
    newlines = sdp.count("\n")
    if crlf and crlf == newlines:
        raws = sdp.split("\r\n")
        eol = "\r\n"
        clean = sdp.count("\r") == crlf
    else:
        raws = sdp.split("\n")
        eol = "\n"
        clean = not crlf and "\r" not in sdp
        if not clean:  # mixed endings: tolerate a CR before LF
            raws = [r[:-1] if r.endswith("\r") else r for r in raws]
            eol = "\r\n" if raws and sdp.split("\n", 1)[0].endswith("\r") else "\n"
            clean = all("\r" not in r for r in raws)
    if clean and "\x00" in sdp:
        clean = False
    if raws and raws[-1] == "":
        raws.pop()
    return raws, eol, clean


# Bound on what one description may hold, whatever signaling delivers; a
# hundred-party SFU description is a few hundred KiB.
MAX_SIZE = 4 * 1024 * 1024


def parse(sdp: str | bytes, max_size: int = MAX_SIZE) -> SessionDescription:
    """Parse ``sdp`` (CRLF, or bare LF tolerated) into a ``SessionDescription``."""
    if isinstance(sdp, (bytes, bytearray, memoryview)):
        if len(sdp) > max_size:
            raise SdpParseError(0, f"description larger than {max_size} bytes")
        sdp = _decode(bytes(sdp))
    if not isinstance(sdp, str):
        raise SdpParseError(0, "SDP must be str or bytes")
    if len(sdp) > max_size:
        raise SdpParseError(0, f"description larger than {max_size} bytes")
    raws, eol, clean = _split(sdp)
    if not raws:
        raise SdpParseError(0, "empty description")
    desc = SessionDescription(eol=eol)
    current: list[Line] = desc.lines
    append = current.append
    typed_heads = _TYPED_HEADS
    flag_lines = _FLAG_LINES
    number = 0
    for raw in raws:
        number += 1
        if clean:
            # Fast path for the common typed a=name:value line and flags;
            # anything unusual goes through _parse_line, which names the
            # reason for a failure.
            head, colon, value = raw.partition(":")
            entry = typed_heads.get(head)
            if entry is not None and colon:
                try:
                    append(Line(entry[1], entry[0](value), raw))
                except ValueError as exc:
                    raise SdpParseError(number, f"{head}: {exc}") from None
                continue
            name = flag_lines.get(raw)
            if name is not None:
                append(Line(name, None, raw))
                continue
        line = _parse_line(raw, number)
        if line.raw[0] == "m":
            section = MediaSection([line])
            desc.media.append(section)
            current = section.lines
            append = current.append
        else:
            append(line)
    # RFC 8866 section 5: v= first; o= and s= at session level.
    if not desc.lines or desc.lines[0].raw[0] != "v":
        raise SdpParseError(1, "description must start with v=")
    kinds = {line.raw[0] for line in desc.lines}
    for required in "os":
        if required not in kinds:
            raise SdpParseError(0, f"session has no {required}= line")
    return desc
