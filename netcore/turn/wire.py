"""TURN on the wire: methods, attributes, ChannelData, stream framing.

RFC 8656 section 17 (methods), 18 (attributes), 12.4 (ChannelData), and
RFC 6062 section 6 (TCP relay attributes). Importing this module registers
the TURN methods and attribute codecs with the STUN registry, so any
``Message`` can read and write them.

ChannelData is the relay's hot path: :func:`parse_channel_data` is one
``struct`` call and a slice; nothing else is allocated.
"""

from __future__ import annotations

import struct
from typing import Iterator

from netcore.demux import PacketKind, classify
from netcore.errors import UsageError
from netcore.stun import attributes as stun_attrs
from netcore.stun.attributes import (
    decode_flag,
    decode_xor_address,
    encode_flag,
    encode_xor_address,
    fixed_bytes_codec,
    register_attribute,
    unsigned_codec,
)
from netcore.stun.errors import StunParseError
from netcore.stun.message import HEADER_LENGTH, register_method
from netcore.turn.errors import TurnParseError

__all__ = [
    "parse_channel_data",
    "encode_channel_data",
    "StreamFramer",
    "CHANNEL_MIN",
    "CHANNEL_MAX",
]


# -- methods (RFC 8656 section 17, RFC 6062 section 6.1) ------------------------
ALLOCATE = 0x003
REFRESH = 0x004
SEND = 0x006
DATA = 0x007
CREATE_PERMISSION = 0x008
CHANNEL_BIND = 0x009
CONNECT = 0x00A
CONNECTION_BIND = 0x00B
CONNECTION_ATTEMPT = 0x00C

for _method, _name in (
    (ALLOCATE, "Allocate"),
    (REFRESH, "Refresh"),
    (SEND, "Send"),
    (DATA, "Data"),
    (CREATE_PERMISSION, "CreatePermission"),
    (CHANNEL_BIND, "ChannelBind"),
    (CONNECT, "Connect"),
    (CONNECTION_BIND, "ConnectionBind"),
    (CONNECTION_ATTEMPT, "ConnectionAttempt"),
):
    register_method(_method, _name)

# -- attributes (RFC 8656 section 18, RFC 6062 section 6.2) ---------------------
CHANNEL_NUMBER = 0x000C
LIFETIME = 0x000D
XOR_PEER_ADDRESS = 0x0012
DATA_ATTR = 0x0013  # DATA; named apart from the Data method
XOR_RELAYED_ADDRESS = 0x0016
REQUESTED_ADDRESS_FAMILY = 0x0017
EVEN_PORT = 0x0018
REQUESTED_TRANSPORT = 0x0019
DONT_FRAGMENT = 0x001A
RESERVATION_TOKEN = 0x0022
CONNECTION_ID = 0x002A
ADDITIONAL_ADDRESS_FAMILY = 0x8000
ADDRESS_ERROR_CODE = 0x8001
ICMP = 0x8004

FAMILY_IPV4 = 0x01
FAMILY_IPV6 = 0x02
TRANSPORT_UDP = 17
TRANSPORT_TCP = 6

# RFC 8656 section 12: channel numbers 0x4000 through 0x4FFF.
CHANNEL_MIN = 0x4000
CHANNEL_MAX = 0x4FFF


def _decode_channel_number(value: bytes, transaction_id: bytes = b"") -> int:
    if len(value) != 4:
        raise StunParseError("CHANNEL-NUMBER is 4 bytes")
    return (value[0] << 8) | value[1]  # the last two bytes are RFFU


def _encode_channel_number(value: int, transaction_id: bytes = b"") -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise UsageError(f"channel number {value:#x} out of range")
    return struct.pack("!HH", value, 0)


def _decode_first_byte(name: str):
    def decode(value: bytes, transaction_id: bytes = b"") -> int:
        if len(value) != 4:
            raise StunParseError(f"{name} is 4 bytes")
        return value[0]

    def encode(value: int, transaction_id: bytes = b"") -> bytes:
        if not 0 <= value <= 0xFF:
            raise UsageError(f"{name} value {value} out of range")
        return bytes((value, 0, 0, 0))

    stun_attrs.SHAPES[decode] = stun_attrs.SHAPE_U8_OF_4
    return decode, encode


def _decode_even_port(value: bytes, transaction_id: bytes = b"") -> bool:
    """EVEN-PORT (section 18.8): True when the R bit asks to reserve the next port."""
    if len(value) != 1 and len(value) != 4:
        raise StunParseError("EVEN-PORT is 1 byte (padded)")
    return bool(value[0] & 0x80)


def _encode_even_port(value: bool, transaction_id: bytes = b"") -> bytes:
    return b"\x80" if value else b"\x00"


def _decode_data(value: bytes, transaction_id: bytes = b"") -> bytes:
    return value


def _encode_data(value: bytes, transaction_id: bytes = b"") -> bytes:
    return bytes(value)


def _decode_address_error_code(value: bytes, transaction_id: bytes = b"") -> tuple[int, int, str]:
    """ADDRESS-ERROR-CODE (section 18.13): (family, code, reason)."""
    if len(value) < 4:
        raise StunParseError("ADDRESS-ERROR-CODE shorter than 4 bytes")
    code, reason = stun_attrs.decode_error_code(b"\x00\x00" + value[2:])
    return value[0], code, reason


def _encode_address_error_code(value: tuple[int, int, str], transaction_id: bytes = b"") -> bytes:
    family, code, reason = value
    return bytes((family, 0)) + stun_attrs.encode_error_code((code, reason))[2:]


def _decode_icmp(value: bytes, transaction_id: bytes = b"") -> tuple[int, int, int]:
    """ICMP (section 18.13): (type, code, error data)."""
    if len(value) != 8:
        raise StunParseError("ICMP attribute is 8 bytes")
    _, icmp_type, icmp_code, data = struct.unpack("!HBBI", value)
    return icmp_type, icmp_code, data


def _encode_icmp(value: tuple[int, int, int], transaction_id: bytes = b"") -> bytes:
    return struct.pack("!HBBI", 0, *value)


stun_attrs.SHAPES[_decode_channel_number] = stun_attrs.SHAPE_U16_OF_4
register_attribute(CHANNEL_NUMBER, "CHANNEL-NUMBER", _decode_channel_number, _encode_channel_number)
register_attribute(LIFETIME, "LIFETIME", *unsigned_codec(struct.Struct("!I")))
register_attribute(XOR_PEER_ADDRESS, "XOR-PEER-ADDRESS", decode_xor_address, encode_xor_address)
register_attribute(DATA_ATTR, "DATA", _decode_data, _encode_data)
register_attribute(XOR_RELAYED_ADDRESS, "XOR-RELAYED-ADDRESS", decode_xor_address, encode_xor_address)
register_attribute(REQUESTED_ADDRESS_FAMILY, "REQUESTED-ADDRESS-FAMILY", *_decode_first_byte("REQUESTED-ADDRESS-FAMILY"))
register_attribute(ADDITIONAL_ADDRESS_FAMILY, "ADDITIONAL-ADDRESS-FAMILY", *_decode_first_byte("ADDITIONAL-ADDRESS-FAMILY"))
register_attribute(REQUESTED_TRANSPORT, "REQUESTED-TRANSPORT", *_decode_first_byte("REQUESTED-TRANSPORT"))
register_attribute(EVEN_PORT, "EVEN-PORT", _decode_even_port, _encode_even_port)
register_attribute(DONT_FRAGMENT, "DONT-FRAGMENT", decode_flag, encode_flag)
register_attribute(RESERVATION_TOKEN, "RESERVATION-TOKEN", *fixed_bytes_codec(8))
register_attribute(CONNECTION_ID, "CONNECTION-ID", *unsigned_codec(struct.Struct("!I")))
register_attribute(ADDRESS_ERROR_CODE, "ADDRESS-ERROR-CODE", _decode_address_error_code, _encode_address_error_code)
register_attribute(ICMP, "ICMP", _decode_icmp, _encode_icmp)


# -- ChannelData (section 12.4) ------------------------------------------------

_CHANNEL_HEADER = struct.Struct("!HH")


def parse_channel_data(datagram: bytes) -> tuple[int, bytes]:
    """``(channel_number, data)`` of one ChannelData message.

    Padding after ``length`` bytes is allowed (it is there over TCP, and may
    be over UDP) and ignored; a channel number outside 0x4000-0x4FFF or a
    length past the end raises TurnParseError.
    """
    if len(datagram) < 4:
        raise TurnParseError("ChannelData shorter than its 4-byte header")
    channel, length = _CHANNEL_HEADER.unpack_from(datagram)
    if not CHANNEL_MIN <= channel <= CHANNEL_MAX:
        raise TurnParseError(f"channel number {channel:#06x} outside 0x4000-0x4FFF")
    if length > len(datagram) - 4:
        raise TurnParseError(f"ChannelData length {length} overruns {len(datagram) - 4} bytes")
    return channel, datagram[4 : 4 + length]


def encode_channel_data(channel_number: int, data: bytes, *, pad: bool = False) -> bytes:
    """One ChannelData message; ``pad`` to a multiple of 4 for stream transports."""
    if not CHANNEL_MIN <= channel_number <= CHANNEL_MAX:
        raise UsageError(f"channel number {channel_number:#06x} outside 0x4000-0x4FFF")
    if len(data) > 0xFFFF:
        raise UsageError("ChannelData carries at most 65535 bytes")
    header = _CHANNEL_HEADER.pack(channel_number, len(data))
    if pad and len(data) & 3:
        return header + data + bytes(4 - (len(data) & 3))
    return header + data


# -- framing over TCP and TLS (section 12.5 of RFC 8656, RFC 6062) --------------


class StreamFramer:
    """Splits a byte stream into STUN messages and ChannelData frames.

    STUN frames are 20 + length bytes; ChannelData frames are 4 + length
    bytes padded to a multiple of 4 (section 12.5). Anything else in the
    stream is fatal for the connection (TurnParseError). The buffer never
    holds more than one frame's worth of bytes, at most ``max_frame``.
    """

    def __init__(self, max_frame: int = 65536 + HEADER_LENGTH, channel_max: int = CHANNEL_MAX) -> None:
        self.max_frame = max_frame
        self._channel_top = channel_max >> 8  # 0x4F, or 0x7F for RFC 5766 channel numbers
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Add bytes; yield every complete frame, padding of ChannelData removed.

        Frames are cut at an offset and the consumed bytes deleted once per
        call (deleting each frame from the front moved the rest every time).
        """
        self._buffer += data
        buffer = self._buffer
        offset = 0
        try:
            while len(buffer) - offset >= 4:
                first = buffer[offset]
                length = (buffer[offset + 2] << 8) | buffer[offset + 3]
                kind = classify(buffer[offset:offset + 2])  # RFC 9443 by the first byte, as everywhere
                if kind is PacketKind.STUN:
                    size = HEADER_LENGTH + length
                    take = size
                elif kind is PacketKind.CHANNEL_DATA or 0x50 <= first <= self._channel_top:  # + RFC 5766's
                    size = 4 + length
                    take = size + (-length & 3)
                else:
                    raise TurnParseError(f"stream byte {first:#04x} starts neither STUN nor ChannelData")
                if take > self.max_frame:
                    raise TurnParseError(f"frame of {take} bytes is larger than {self.max_frame}")
                if len(buffer) - offset < take:
                    return
                frame = bytes(buffer[offset:offset + size])
                offset += take
                yield frame
        finally:
            del buffer[:offset]

    @property
    def buffered(self) -> int:
        return len(self._buffer)
