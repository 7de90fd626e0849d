"""RTP header extensions (RFC 8285) and the registered extension URIs.

Elements are kept raw in the packet and decoded on access.  The wire forms:

* one-byte header, profile 0xBEDE: ``ID(4) L(4)`` then L+1 bytes, ID 1-14;
* two-byte header, profile 0x100X (X = "appbits"): ``ID(8) L(8)`` then L bytes.

A :class:`HeaderExtensionMap` ties the IDs negotiated in SDP (``a=extmap``)
to URIs, and each URI to a codec that turns the element's bytes into a value
and back.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from netcore.errors import UsageError
from netcore.rtp.errors import RtpParseError

if TYPE_CHECKING:
    from netcore.rtp.packet import RtpPacket

__all__ = [
    "ONE_BYTE_PROFILE",
    "TWO_BYTE_PROFILE",
    "URI_MID",
    "URI_RTP_STREAM_ID",
    "URI_REPAIRED_RTP_STREAM_ID",
    "URI_AUDIO_LEVEL",
    "URI_ABS_SEND_TIME",
    "URI_TRANSPORT_CC",
    "URI_VIDEO_ORIENTATION",
    "AudioLevel",
    "VideoOrientation",
    "ExtensionCodec",
    "EXTENSION_CODECS",
    "HeaderExtensionMap",
    "decode_extensions",
    "encode_extensions",
]

ONE_BYTE_PROFILE = 0xBEDE  # RFC 8285 section 4.2
TWO_BYTE_PROFILE = 0x1000  # RFC 8285 section 4.3, low 4 bits are appbits

URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_RTP_STREAM_ID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
URI_REPAIRED_RTP_STREAM_ID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_TRANSPORT_CC = (
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
)
URI_VIDEO_ORIENTATION = "urn:3gpp:video-orientation"

_U16 = struct.Struct("!H")


def _parse_error(message: str) -> RtpParseError:
    return RtpParseError(message)


def decode_extensions(
    profile: int, data: bytes, start: int, end: int
) -> list[tuple[int, bytes]]:
    """Decode the elements in ``data[start:end]`` of an extension of ``profile``.

    Returns ``[]`` for profiles other than the RFC 8285 forms.
    """
    out: list[tuple[int, bytes]] = []
    pos = start
    if profile == ONE_BYTE_PROFILE:
        while pos < end:
            b = data[pos]
            if b == 0:  # RFC 8285 section 4.2: padding
                pos += 1
                continue
            ext_id = b >> 4
            if ext_id == 15:  # RFC 8285 section 4.2: stop processing
                break
            length = (b & 0x0F) + 1
            pos += 1
            if pos + length > end:
                raise _parse_error("one-byte header extension element overruns")
            out.append((ext_id, data[pos : pos + length]))
            pos += length
    elif profile & 0xFFF0 == TWO_BYTE_PROFILE:
        while pos < end:
            ext_id = data[pos]
            if ext_id == 0:  # RFC 8285 section 4.3: padding
                pos += 1
                continue
            if pos + 2 > end:
                raise _parse_error("two-byte header extension element is truncated")
            length = data[pos + 1]
            pos += 2
            if pos + length > end:
                raise _parse_error("two-byte header extension element overruns")
            out.append((ext_id, data[pos : pos + length]))
            pos += length
    return out


def encode_extensions(elements: Iterable[tuple[int, bytes]]) -> tuple[int, bytes]:
    """Encode ``(id, value)`` elements; returns ``(profile, data)``.

    The one-byte form is used when every ID is 1-14 and every value 1-16
    bytes (RFC 8285 section 4.2), else the two-byte form.  Data is padded
    with zeros to a multiple of 4.
    """
    items = elements if isinstance(elements, list) else list(elements)
    one_byte = True
    for ext_id, value in items:
        if not 1 <= ext_id <= 255 or len(value) > 255:
            raise UsageError(f"extension id {ext_id} or length {len(value)} invalid")
        if ext_id > 14 or not 1 <= len(value) <= 16:
            one_byte = False
    data = bytearray()
    if one_byte:
        profile = ONE_BYTE_PROFILE
        for ext_id, value in items:
            data.append((ext_id << 4) | (len(value) - 1))
            data += value
    else:
        profile = TWO_BYTE_PROFILE
        for ext_id, value in items:
            data.append(ext_id)
            data.append(len(value))
            data += value
    data += bytes(-len(data) % 4)
    return profile, bytes(data)


# --- value codecs per URI ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioLevel:
    """RFC 6464: voice activity flag and level in -dBov (0 loudest, 127 silence)."""

    voice: bool
    level: int


@dataclass(frozen=True, slots=True)
class VideoOrientation:
    """3GPP TS 26.114 CVO: camera (0 front, 1 back), horizontal flip, rotation."""

    camera: int
    flip: bool
    rotation: int  # degrees clockwise: 0, 90, 180, 270


@dataclass(frozen=True, slots=True)
class ExtensionCodec:
    """How one URI's element bytes map to a value and back."""

    uri: str
    decode: Callable[[bytes], Any]
    encode: Callable[[Any], bytes]


def _need(value: bytes, n: int, what: str) -> None:
    if len(value) != n:
        raise _parse_error(f"{what} extension has {len(value)} bytes, not {n}")


def _decode_text(value: bytes, what: str, encoding: str) -> str:
    try:
        return value.decode(encoding)
    except UnicodeDecodeError:
        raise _parse_error(f"{what} extension is not {encoding}") from None


def _decode_audio_level(value: bytes) -> AudioLevel:
    if not value:
        raise _parse_error("audio level extension is empty")
    # RFC 6464 section 3: one byte (V, level); a longer element is padded.
    return AudioLevel(voice=bool(value[0] & 0x80), level=value[0] & 0x7F)


def _encode_audio_level(v: AudioLevel) -> bytes:
    return bytes(((0x80 if v.voice else 0) | (v.level & 0x7F),))


def _decode_abs_send_time(value: bytes) -> int:
    _need(value, 3, "abs-send-time")
    return int.from_bytes(value, "big")  # 6.18 fixed-point seconds


def _decode_twcc(value: bytes) -> int:
    if len(value) != 2:
        _need(value, 2, "transport-wide sequence number")
    return (value[0] << 8) | value[1]


def _decode_orientation(value: bytes) -> VideoOrientation:
    if not value:
        raise _parse_error("video orientation extension is empty")
    b = value[0]  # TS 26.114 section 7.4.5: 0 0 0 0 C F R1 R0
    return VideoOrientation(camera=(b >> 3) & 1, flip=bool(b & 4), rotation=(b & 3) * 90)


def _encode_orientation(v: VideoOrientation) -> bytes:
    return bytes(((v.camera & 1) << 3 | (4 if v.flip else 0) | (v.rotation // 90) & 3,))


EXTENSION_CODECS: dict[str, ExtensionCodec] = {
    c.uri: c
    for c in (
        ExtensionCodec(
            URI_MID, lambda v: _decode_text(v, "mid", "utf-8"), lambda s: s.encode()
        ),
        ExtensionCodec(
            URI_RTP_STREAM_ID,
            lambda v: _decode_text(v, "rtp-stream-id", "ascii"),
            lambda s: s.encode("ascii"),
        ),
        ExtensionCodec(
            URI_REPAIRED_RTP_STREAM_ID,
            lambda v: _decode_text(v, "repaired-rtp-stream-id", "ascii"),
            lambda s: s.encode("ascii"),
        ),
        ExtensionCodec(URI_AUDIO_LEVEL, _decode_audio_level, _encode_audio_level),
        ExtensionCodec(
            URI_ABS_SEND_TIME,
            _decode_abs_send_time,
            lambda t: (t & 0xFFFFFF).to_bytes(3, "big"),
        ),
        ExtensionCodec(URI_TRANSPORT_CC, _decode_twcc, lambda n: _U16.pack(n & 0xFFFF)),
        ExtensionCodec(URI_VIDEO_ORIENTATION, _decode_orientation, _encode_orientation),
    )
}


def abs_send_time_from_seconds(seconds: float) -> int:
    """The 24-bit abs-send-time (6.18 fixed point, seconds modulo 64)."""
    return int(seconds * (1 << 18)) & 0xFFFFFF


class HeaderExtensionMap:
    """The negotiated ``a=extmap`` IDs and the URI codecs to decode them.

    Unknown URIs may be mapped too; their values are returned raw.
    """

    __slots__ = ("_by_id", "_by_uri", "_decoders")

    def __init__(self, ids: Mapping[int, str] | None = None) -> None:
        self._by_id: dict[int, str] = {}
        self._by_uri: dict[str, int] = {}
        self._decoders: dict[str, tuple[int, Callable[[bytes], Any]]] = {}
        for ext_id, uri in (ids or {}).items():
            self.register(ext_id, uri)

    def register(self, ext_id: int, uri: str) -> None:
        if not 1 <= ext_id <= 255 or ext_id == 15:
            raise UsageError(f"extension id {ext_id} is not usable")
        self._by_id[ext_id] = uri
        self._by_uri[uri] = ext_id
        codec = EXTENSION_CODECS.get(uri)
        self._decoders[uri] = (ext_id, codec.decode if codec else bytes)

    def id_of(self, uri: str) -> int | None:
        return self._by_uri.get(uri)

    def uri_of(self, ext_id: int) -> str | None:
        return self._by_id.get(ext_id)

    def decode_value(self, uri: str, value: bytes) -> Any:
        codec = EXTENSION_CODECS.get(uri)
        return codec.decode(value) if codec else value

    def value(self, packet: RtpPacket, uri: str) -> Any:
        """The decoded value of ``uri`` in ``packet``, or None (the fast path)."""
        entry = self._decoders.get(uri)
        if entry is None:
            return None
        raw = packet.extension(entry[0])
        return None if raw is None else entry[1](raw)

    def get(self, elements: Iterable[tuple[int, bytes]], uri: str) -> Any:
        """The decoded value of ``uri`` among ``elements``, or None."""
        ext_id = self._by_uri.get(uri)
        if ext_id is None:
            return None
        for i, value in elements:
            if i == ext_id:
                return self.decode_value(uri, value)
        return None

    def decode(self, elements: Iterable[tuple[int, bytes]]) -> dict[str, Any]:
        """All mapped elements as ``{uri: value}`` (unmapped IDs are skipped)."""
        out: dict[str, Any] = {}
        for ext_id, value in elements:
            uri = self._by_id.get(ext_id)
            if uri is not None and uri not in out:
                out[uri] = self.decode_value(uri, value)
        return out

    def encode(self, values: Mapping[str, Any]) -> list[tuple[int, bytes]]:
        """``{uri: value}`` as ``(id, bytes)`` elements for :meth:`RtpPacket.build`."""
        out = []
        for uri, value in values.items():
            ext_id = self._by_uri.get(uri)
            if ext_id is None:
                raise UsageError(f"extension {uri} is not negotiated")
            codec = EXTENSION_CODECS.get(uri)
            out.append((ext_id, codec.encode(value) if codec else bytes(value)))
        return out
