"""STUN attribute types and the registry of their value codecs (RFC 8489 section 14).

Each attribute type has one entry: its name, a decoder from the value bytes
(and the transaction id, which the XOR-ed addresses need) to a Python value,
and an encoder back. The TURN and ICE packages add their own attributes with
:func:`register_attribute` from their own modules, the way aioice keeps one
table of (type, name, pack, unpack).

Values: addresses are ``(host, port)`` tuples with the host as text; strings
are ``str``; ERROR-CODE is ``(code, reason)``; flags (USE-CANDIDATE) are
``True``; integers are ``int``.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any, Callable

from netcore.errors import UsageError
from netcore.stun.errors import StunParseError

__all__ = [
    "AttributeCodec",
    "register_attribute",
    "codec_for",
    "attribute_name",
    "decode_address",
    "encode_address",
    "decode_xor_address",
    "encode_xor_address",
    "decode_string",
    "string_encoder",
    "unsigned_codec",
    "fixed_bytes_codec",
    "decode_flag",
    "encode_flag",
    "MAGIC_COOKIE",
]

MAGIC_COOKIE = 0x2112A442
_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")

# RFC 8489 section 18.3.1: comprehension-required range 0x0000-0x7FFF.
MAPPED_ADDRESS = 0x0001
USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
UNKNOWN_ATTRIBUTES = 0x000A
REALM = 0x0014
NONCE = 0x0015
MESSAGE_INTEGRITY_SHA256 = 0x001C
PASSWORD_ALGORITHM = 0x001D
USERHASH = 0x001E
XOR_MAPPED_ADDRESS = 0x0020
PRIORITY = 0x0024  # RFC 8445 section 16.1
USE_CANDIDATE = 0x0025
# Section 18.3.2: comprehension-optional range 0x8000-0xFFFF.
PASSWORD_ALGORITHMS = 0x8002
ALTERNATE_DOMAIN = 0x8003
SOFTWARE = 0x8022
ALTERNATE_SERVER = 0x8023
FINGERPRINT = 0x8028
ICE_CONTROLLED = 0x8029
ICE_CONTROLLING = 0x802A

# PASSWORD-ALGORITHM values (RFC 8489 section 18.5).
ALGORITHM_MD5 = 0x0001
ALGORITHM_SHA256 = 0x0002


@dataclass(frozen=True, slots=True)
class AttributeCodec:
    """How one attribute type's value is read from and written to bytes."""

    type: int
    name: str
    decode: Callable[[bytes, bytes], Any]  # (value, transaction_id) -> value
    encode: Callable[[Any, bytes], bytes]  # (value, transaction_id) -> bytes


_REGISTRY: dict[int, AttributeCodec] = {}
# type -> decode function, and type -> encode function: the hot-path views of the registry.
DECODERS: dict[int, Callable[[bytes, bytes], Any]] = {}
ENCODERS: dict[int, Callable[[Any, bytes], bytes]] = {}
# Decoders whose result for a value of one length the compiled codec (netcore.stun.compiled) reads itself in
# Message.get, by decoder: what a TURN server reads of every request (LIFETIME, CHANNEL-NUMBER,
# XOR-PEER-ADDRESS, ...). Any other length still goes to the decoder, so its errors stay the only ones. An
# encoder of SHAPE_U32 is written in C by Message.encode_response for an int that fits (a Refresh's LIFETIME).
SHAPE_U32 = 1  # 4 bytes, big-endian
SHAPE_U16_OF_4 = 2  # the first two of 4 bytes, big-endian (the rest RFFU)
SHAPE_U8_OF_4 = 3  # the first of 4 bytes
SHAPE_XOR_ADDRESS = 4  # an 8-byte IPv4 XOR-...-ADDRESS (section 14.2): (dotted decimal, port)
SHAPES: dict[Callable[[bytes, bytes], Any], int] = {}


def register_attribute(
    type_: int,
    name: str,
    decode: Callable[[bytes, bytes], Any],
    encode: Callable[[Any, bytes], bytes],
) -> None:
    """Register the codec of attribute ``type_``; re-registering the same name is a no-op."""
    if not 0 <= type_ <= 0xFFFF:
        raise UsageError(f"attribute type {type_:#x} out of range")
    existing = _REGISTRY.get(type_)
    if existing is not None and existing.name != name:
        raise UsageError(f"attribute {type_:#06x} is already {existing.name}")
    _REGISTRY[type_] = AttributeCodec(type_, name, decode, encode)
    DECODERS[type_] = decode
    ENCODERS[type_] = encode


def codec_for(type_: int) -> AttributeCodec | None:
    return _REGISTRY.get(type_)


def attribute_name(type_: int) -> str:
    codec = _REGISTRY.get(type_)
    return codec.name if codec is not None else f"0x{type_:04X}"


# -- value codecs -------------------------------------------------------------

_FAMILY_PORT = struct.Struct("!xBH")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_IPV4, _IPV6 = 0x01, 0x02


def decode_address(value: bytes, transaction_id: bytes = b"") -> tuple[str, int]:
    """MAPPED-ADDRESS form (section 14.1): family, port, address."""
    if len(value) < 4:
        raise StunParseError("address attribute shorter than 4 bytes")
    family, port = _FAMILY_PORT.unpack_from(value)
    return _unpack_host(family, value[4:]), port


def _unpack_host(family: int, raw: bytes) -> str:
    if family == _IPV4 and len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if family == _IPV6 and len(raw) == 16:
        return socket.inet_ntop(socket.AF_INET6, raw)
    raise StunParseError(f"bad address family {family} or length {len(raw)}")


def _pack_host(host: str) -> tuple[int, bytes]:
    try:
        if ":" in host:
            host = host.partition("%")[0]  # a zone id is local to this host
            return _IPV6, socket.inet_pton(socket.AF_INET6, host)
        return _IPV4, socket.inet_pton(socket.AF_INET, host)
    except (OSError, TypeError) as exc:
        raise UsageError(f"not an IP address: {host!r}") from exc


def encode_address(value: tuple[str, int], transaction_id: bytes = b"") -> bytes:
    host, port = value[0], value[1]
    family, raw = _pack_host(host)
    return _FAMILY_PORT.pack(family, port) + raw


def _xor(raw: bytes, mask: bytes) -> bytes:
    return (int.from_bytes(raw, "big") ^ int.from_bytes(mask, "big")).to_bytes(len(raw), "big")


_XOR_IPV4 = struct.Struct("!xBHBBBB")  # an IPv4 XOR-...-ADDRESS value: family, port, the four bytes
_C0, _C1, _C2, _C3 = _COOKIE_BYTES
_PORT_MASK = MAGIC_COOKIE >> 16
# Each byte of an XOR-ed IPv4 address, by its position, as the decimal text of the byte it stands for:
# four lookups instead of four XORs and four int-to-text conversions (0.2 instead of 0.7 us per address).
_XOR_OCTETS = tuple(tuple(str(byte ^ mask) for byte in range(256)) for mask in _COOKIE_BYTES)
_O0, _O1, _O2, _O3 = _XOR_OCTETS


def decode_xor_address(value: bytes, transaction_id: bytes) -> tuple[str, int]:
    """XOR-MAPPED-ADDRESS form (section 14.2): port and address XOR-ed with the cookie (+ id).

    An IPv4 value (every XOR-PEER-ADDRESS of a ChannelBind or
    CreatePermission to an IPv4 peer) is read with one unpack and written
    as dotted decimal directly, as ``inet_ntop`` would.
    """
    if len(value) == 8:
        family, xport, b0, b1, b2, b3 = _XOR_IPV4.unpack(value)
        if family == _IPV4:
            return f"{_O0[b0]}.{_O1[b1]}.{_O2[b2]}.{_O3[b3]}", xport ^ _PORT_MASK
    if len(value) < 4:
        raise StunParseError("address attribute shorter than 4 bytes")
    family, xport = _FAMILY_PORT.unpack_from(value)
    raw = value[4:]
    if family == _IPV6 and len(raw) == 16:
        raw = _xor(raw, _COOKIE_BYTES + transaction_id)
    elif family == _IPV4 and len(raw) == 4:
        raw = _xor(raw, _COOKIE_BYTES)
    return _unpack_host(family, raw), xport ^ (MAGIC_COOKIE >> 16)


SHAPES[decode_xor_address] = SHAPE_XOR_ADDRESS


def encode_xor_address(value: tuple[str, int], transaction_id: bytes) -> bytes:
    host, port = value[0], value[1]
    family, raw = _pack_host(host)
    if family == _IPV4:  # XOR-RELAYED- and XOR-MAPPED-ADDRESS of every Allocate answer: one pack
        return _XOR_IPV4.pack(family, port ^ _PORT_MASK, raw[0] ^ _C0, raw[1] ^ _C1, raw[2] ^ _C2, raw[3] ^ _C3)
    mask = _COOKIE_BYTES if family == _IPV4 else _COOKIE_BYTES + transaction_id
    return _FAMILY_PORT.pack(family, port ^ (MAGIC_COOKIE >> 16)) + _xor(raw, mask)


def decode_string(value: bytes, transaction_id: bytes = b"") -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StunParseError(f"attribute text is not UTF-8: {exc.reason}") from None


def string_encoder(limit: int) -> Callable[[str, bytes], bytes]:
    def encode(value: str, transaction_id: bytes = b"") -> bytes:
        raw = value.encode("utf-8")
        if len(raw) > limit:
            raise UsageError(f"attribute text longer than {limit} bytes")
        return raw

    return encode


def fixed_bytes_codec(*lengths: int) -> tuple[Callable[[bytes, bytes], bytes], Callable[[bytes, bytes], bytes]]:
    def decode(value: bytes, transaction_id: bytes = b"") -> bytes:
        if len(value) not in lengths:
            raise StunParseError(f"attribute value of {len(value)} bytes, expected {lengths}")
        return bytes(value)

    def encode(value: bytes, transaction_id: bytes = b"") -> bytes:
        if len(value) not in lengths:
            raise UsageError(f"attribute value of {len(value)} bytes, expected {lengths}")
        return bytes(value)

    return decode, encode


def unsigned_codec(st: struct.Struct) -> tuple[Callable[[bytes, bytes], int], Callable[[int, bytes], bytes]]:
    unpack = st.unpack

    def decode(value: bytes, transaction_id: bytes = b"") -> int:
        try:
            return unpack(value)[0]
        except struct.error:
            raise StunParseError(f"integer attribute of {len(value)} bytes, expected {st.size}") from None

    def encode(value: int, transaction_id: bytes = b"") -> bytes:
        try:
            return st.pack(value)
        except struct.error as exc:
            raise UsageError(f"integer attribute value {value!r} out of range") from exc

    if st.format in ("!I", ">I"):
        SHAPES[decode] = SHAPES[encode] = SHAPE_U32
    return decode, encode


def decode_flag(value: bytes, transaction_id: bytes = b"") -> bool:
    if value:
        raise StunParseError("flag attribute with a value")
    return True


def encode_flag(value: object, transaction_id: bytes = b"") -> bytes:
    return b""


def decode_error_code(value: bytes, transaction_id: bytes = b"") -> tuple[int, str]:
    """ERROR-CODE (section 14.8): class in 3 bits, number 0-99, reason phrase."""
    if len(value) < 4:
        raise StunParseError("ERROR-CODE shorter than 4 bytes")
    cls, number = value[2] & 0x07, value[3]
    if not 3 <= cls <= 6 or number > 99:
        raise StunParseError(f"ERROR-CODE class {cls} number {number} out of range")
    return cls * 100 + number, value[4:].decode("utf-8", errors="replace")


def encode_error_code(value: tuple[int, str], transaction_id: bytes = b"") -> bytes:
    code, reason = value
    if not 300 <= code <= 699:
        raise UsageError(f"error code {code} out of range 300-699")
    return bytes((0, 0, code // 100, code % 100)) + string_encoder(763)(reason)


def decode_unknown_attributes(value: bytes, transaction_id: bytes = b"") -> tuple[int, ...]:
    if len(value) % 2:
        raise StunParseError("UNKNOWN-ATTRIBUTES of odd length")
    return tuple(_U16.unpack_from(value, i)[0] for i in range(0, len(value), 2))


def encode_unknown_attributes(value: tuple[int, ...], transaction_id: bytes = b"") -> bytes:
    return b"".join(_U16.pack(t) for t in value)


def _decode_algorithm_at(value: bytes, offset: int) -> tuple[tuple[int, bytes], int]:
    if offset + 4 > len(value):
        raise StunParseError("truncated password algorithm")
    algorithm, length = struct.unpack_from("!HH", value, offset)
    end = offset + 4 + length
    if end > len(value):
        raise StunParseError("password algorithm parameters overrun the attribute")
    return (algorithm, bytes(value[offset + 4 : end])), end + (-length % 4)


def decode_password_algorithm(value: bytes, transaction_id: bytes = b"") -> tuple[int, bytes]:
    """PASSWORD-ALGORITHM (section 14.12): ``(algorithm, parameters)``."""
    algorithm, end = _decode_algorithm_at(value, 0)
    if end < len(value):
        raise StunParseError("trailing bytes after PASSWORD-ALGORITHM")
    return algorithm


def encode_password_algorithm(value: tuple[int, bytes], transaction_id: bytes = b"") -> bytes:
    algorithm, params = value
    return struct.pack("!HH", algorithm, len(params)) + params + bytes(-len(params) % 4)


def decode_password_algorithms(value: bytes, transaction_id: bytes = b"") -> tuple[tuple[int, bytes], ...]:
    """PASSWORD-ALGORITHMS (section 14.11): a list of ``(algorithm, parameters)``."""
    algorithms, offset = [], 0
    while offset < len(value):
        algorithm, offset = _decode_algorithm_at(value, offset)
        algorithms.append(algorithm)
    return tuple(algorithms)


def encode_password_algorithms(value: tuple[tuple[int, bytes], ...], transaction_id: bytes = b"") -> bytes:
    if value == _OFFERED_LAST[0]:
        return _OFFERED_LAST[1]  # a server offers the same list in every 401 and 438
    encoded = b"".join(encode_password_algorithm(a) for a in value)
    _OFFERED_LAST[:] = [tuple((algorithm, bytes(parameters)) for algorithm, parameters in value), encoded]
    return encoded


_OFFERED_LAST: list = [None, b""]  # the last PASSWORD-ALGORITHMS value encoded, and its bytes


def _register_rfc8489() -> None:
    register_attribute(MAPPED_ADDRESS, "MAPPED-ADDRESS", decode_address, encode_address)
    register_attribute(XOR_MAPPED_ADDRESS, "XOR-MAPPED-ADDRESS", decode_xor_address, encode_xor_address)
    register_attribute(ALTERNATE_SERVER, "ALTERNATE-SERVER", decode_address, encode_address)
    register_attribute(USERNAME, "USERNAME", decode_string, string_encoder(512))
    register_attribute(REALM, "REALM", decode_string, string_encoder(763))
    register_attribute(NONCE, "NONCE", decode_string, string_encoder(763))
    register_attribute(SOFTWARE, "SOFTWARE", decode_string, string_encoder(763))
    register_attribute(ALTERNATE_DOMAIN, "ALTERNATE-DOMAIN", decode_string, string_encoder(255))
    register_attribute(USERHASH, "USERHASH", *fixed_bytes_codec(32))
    register_attribute(MESSAGE_INTEGRITY, "MESSAGE-INTEGRITY", *fixed_bytes_codec(20))
    register_attribute(MESSAGE_INTEGRITY_SHA256, "MESSAGE-INTEGRITY-SHA256", *fixed_bytes_codec(16, 20, 24, 28, 32))
    register_attribute(FINGERPRINT, "FINGERPRINT", *unsigned_codec(_U32))
    register_attribute(ERROR_CODE, "ERROR-CODE", decode_error_code, encode_error_code)
    register_attribute(UNKNOWN_ATTRIBUTES, "UNKNOWN-ATTRIBUTES", decode_unknown_attributes, encode_unknown_attributes)
    register_attribute(PASSWORD_ALGORITHM, "PASSWORD-ALGORITHM", decode_password_algorithm, encode_password_algorithm)
    register_attribute(PASSWORD_ALGORITHMS, "PASSWORD-ALGORITHMS", decode_password_algorithms, encode_password_algorithms)
    # ICE (RFC 8445 section 16.1) lives here because every STUN user meets it.
    register_attribute(PRIORITY, "PRIORITY", *unsigned_codec(_U32))
    register_attribute(USE_CANDIDATE, "USE-CANDIDATE", decode_flag, encode_flag)
    register_attribute(ICE_CONTROLLED, "ICE-CONTROLLED", *unsigned_codec(_U64))
    register_attribute(ICE_CONTROLLING, "ICE-CONTROLLING", *unsigned_codec(_U64))


_register_rfc8489()
