"""The STUN message: header, attributes in wire order, integrity and fingerprint.

RFC 8489 section 5 (header), 14 (attributes), 14.5-14.7 (MESSAGE-INTEGRITY,
MESSAGE-INTEGRITY-SHA256, FINGERPRINT). Parsing walks the attributes once and
keeps each value as raw bytes; values are decoded on access through the
attribute registry, so a relay that only needs a channel number or a peer
address pays for nothing else.

Integrity and fingerprint attributes are always written last, in the order
MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256, FINGERPRINT (section 6.3), from
the keys passed to :meth:`Message.encode`; any such attributes already in the
attribute list are replaced. Re-encoding a parsed message with the same key
therefore gives back the same bytes.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import struct
import zlib
from typing import Any, Callable, Iterator

from netcore.errors import UsageError
from netcore.stun import attributes as attrs
from netcore.stun.attributes import DECODERS, MAGIC_COOKIE, attribute_name, codec_for
from netcore.stun.errors import StunParseError

__all__ = [
    "Message",
    "MessageClass",
    "BINDING",
    "register_method",
    "method_name",
    "random_transaction_id",
    "FINGERPRINT_XOR",
]

HEADER = struct.Struct("!HHI12s")
HEADER_LENGTH = 20
_TLV = struct.Struct("!HH")
_LENGTH = struct.Struct("!H")
_U32 = struct.Struct("!I")
FINGERPRINT_XOR = 0x5354554E  # section 14.7

_MI = attrs.MESSAGE_INTEGRITY
_MI256 = attrs.MESSAGE_INTEGRITY_SHA256
_FP = attrs.FINGERPRINT
_SIGNATURES = frozenset((_MI, _MI256, _FP))
_ZEROS = bytes(3)
# Signature value lengths that can verify: sections 14.5 and 14.6 (a truncated
# HMAC-SHA256 of at least 16 bytes, in whole words).
_MI_SIZES = (20,)
_MI256_SIZES = (16, 20, 24, 28, 32)


_HMAC_PADS: dict[str, dict[bytes, tuple[Any, Any]]] = {"sha1": {}, "sha256": {}}


def _hmac(key: bytes, data: bytes, digest: str) -> bytes:
    """HMAC (RFC 2104) with the keyed inner and outer states cached per key.

    A STUN agent signs and checks many messages with few keys; starting from
    the cached states saves the key schedule on every message.
    """
    cache = _HMAC_PADS[digest]
    pads = cache.get(key)
    if pads is None:
        if len(cache) >= 1024:
            cache.clear()  # bounded whatever the peers send
        pads = cache[key] = _make_pads(key, digest)
    inner = pads[0].copy()
    inner.update(data)
    outer = pads[1].copy()
    outer.update(inner.digest())
    return outer.digest()


def _make_pads(key: bytes, digest: str) -> tuple[Any, Any]:
    constructor = getattr(hashlib, digest)
    block_size = constructor().block_size
    if len(key) > block_size:
        key = constructor(key).digest()
    key = key.ljust(block_size, b"\x00")
    return (
        constructor(bytes(b ^ 0x36 for b in key)),
        constructor(bytes(b ^ 0x5C for b in key)),
    )


class MessageClass(enum.IntEnum):
    """The two class bits C1 C0 of the message type (section 5)."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS = 0b10
    ERROR = 0b11


_CLASSES = tuple(MessageClass)

BINDING = 0x001
_METHOD_NAMES: dict[int, str] = {BINDING: "Binding"}


def register_method(method: int, name: str) -> None:
    """Give ``method`` a name for logs and ``repr``; TURN registers its methods."""
    if not 0 <= method <= 0xFFF:
        raise UsageError(f"method {method:#x} out of the 12-bit range")
    _METHOD_NAMES[method] = name


def method_name(method: int) -> str:
    return _METHOD_NAMES.get(method, f"0x{method:03X}")


def _message_type(method: int, message_class: int) -> int:
    # Section 5: M11..M7 C1 M6..M4 C0 M3..M0.
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((message_class & 0b01) << 4)
        | ((message_class & 0b10) << 7)
    )


def _split_type(message_type: int) -> tuple[int, MessageClass]:
    method = (message_type & 0x000F) | ((message_type & 0x00E0) >> 1) | ((message_type & 0x3E00) >> 2)
    message_class = ((message_type & 0x0010) >> 4) | ((message_type & 0x0100) >> 7)
    return method, _CLASSES[message_class]


_TYPES: dict[int, tuple[int, MessageClass]] = {}  # message type -> (method, class), at most 16384 entries
_unpack_header = HEADER.unpack_from
_unpack_tlv = _TLV.unpack_from
_unpack_length = _LENGTH.unpack_from
_unpack_u32 = _U32.unpack_from


def random_transaction_id(random: Callable[[int], bytes] = os.urandom) -> bytes:
    return random(12)


class Message:
    """One STUN message.

    ``attributes`` is the list of ``(type, raw_value)`` in wire order, repeats
    kept. :meth:`get` decodes a value through the attribute registry.
    """

    __slots__ = (
        "method",
        "message_class",
        "transaction_id",
        "attributes",
        "_raw",
        "_mi_at",
        "_mi256_at",
        "_fp_at",
        "_pads",
    )

    def __init__(
        self,
        method: int,
        message_class: int,
        transaction_id: bytes | None = None,
        attributes: list[tuple[int, bytes]] | None = None,
    ) -> None:
        if transaction_id is None:
            transaction_id = os.urandom(12)
        elif len(transaction_id) != 12:
            raise UsageError("a transaction id is 12 bytes")
        self.method = method
        self.message_class = message_class
        self.transaction_id = transaction_id
        self.attributes: list[tuple[int, bytes]] = attributes if attributes is not None else []
        self._raw: bytes | None = None
        self._mi_at = self._mi256_at = self._fp_at = -1
        self._pads: dict[int, bytes] | None = None

    # -- building ---------------------------------------------------------------

    def add(self, attr_type: int, value: Any = True) -> Message:
        """Append an attribute, encoding ``value`` with the registered codec."""
        codec = codec_for(attr_type)
        if codec is None:
            raise UsageError(f"no codec registered for attribute {attr_type:#06x}; use add_raw")
        self.attributes.append((attr_type, codec.encode(value, self.transaction_id)))
        return self

    def add_raw(self, attr_type: int, value: bytes) -> Message:
        if not 0 <= attr_type <= 0xFFFF or len(value) > 0xFFFF:
            raise UsageError("attribute type or value length out of range")
        self.attributes.append((attr_type, bytes(value)))
        return self

    def encode(
        self,
        integrity_key: bytes | None = None,
        *,
        integrity_sha256_key: bytes | None = None,
        fingerprint: bool = False,
    ) -> bytes:
        """Serialize; sign with MESSAGE-INTEGRITY(-SHA256) and add FINGERPRINT as asked."""
        parts = []
        pads = self._pads
        for index, (attr_type, value) in enumerate(self.attributes):
            if attr_type in _SIGNATURES:
                continue
            length = len(value)
            parts.append(_TLV.pack(attr_type, length))
            parts.append(value)
            if length & 3:
                pad = pads.get(index) if pads else None
                parts.append(pad if pad is not None else bytes(4 - (length & 3)))
        body = b"".join(parts)
        message_type = _message_type(self.method, self.message_class)
        if integrity_key is not None:
            body += self._signature(message_type, body, _MI, 20, integrity_key, "sha1")
        if integrity_sha256_key is not None:
            body += self._signature(message_type, body, _MI256, 32, integrity_sha256_key, "sha256")
        if fingerprint:
            head = HEADER.pack(message_type, len(body) + 8, MAGIC_COOKIE, self.transaction_id)
            crc = zlib.crc32(body, zlib.crc32(head)) ^ FINGERPRINT_XOR
            body += _TLV.pack(_FP, 4) + _U32.pack(crc)
        return HEADER.pack(message_type, len(body), MAGIC_COOKIE, self.transaction_id) + body

    def _signature(self, message_type: int, body: bytes, attr_type: int, size: int, key: bytes, digest: str) -> bytes:
        # Section 14.5: the length field counts up to the end of the integrity attribute.
        head = HEADER.pack(message_type, len(body) + 4 + size, MAGIC_COOKIE, self.transaction_id)
        return _TLV.pack(attr_type, size) + _hmac(key, head + body, digest)

    # -- parsing ------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes) -> Message:
        """Parse one whole datagram; raise StunParseError if it is not STUN.

        One pass over the attributes (section 14), with the rules on what
        may follow MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT
        applied as it goes: anything else after them is ignored (sections
        14.5-14.7). Written flat because every datagram of a STUN or TURN
        server goes through it.
        """
        size = len(data)
        if size < HEADER_LENGTH:
            raise StunParseError(f"{size} bytes is shorter than a STUN header")
        data = bytes(data)
        message_type, length, cookie, transaction_id = _unpack_header(data)
        if message_type & 0xC000:
            raise StunParseError("the two most significant bits are not zero")
        if cookie != MAGIC_COOKIE:
            raise StunParseError("no magic cookie")
        if length & 3 or length + HEADER_LENGTH != size:
            raise StunParseError(f"length field {length} does not match {size - HEADER_LENGTH} bytes of body")
        split = _TYPES.get(message_type)
        if split is None:
            split = _TYPES[message_type] = _split_type(message_type)

        attributes: list[tuple[int, bytes]] = []
        append = attributes.append
        signed = False
        mi_at = mi256_at = fp_at = -1
        pads = None
        offset = HEADER_LENGTH
        while offset < size:
            attr_type, length = _unpack_tlv(data, offset)  # offset + 4 <= size: both are multiples of 4
            end = offset + 4 + length
            if attr_type not in _SIGNATURES:
                if end > size:
                    raise StunParseError(f"attribute {attribute_name(attr_type)} overruns the message")
                if not signed:  # attributes after a signature are ignored
                    append((attr_type, data[offset + 4 : end]))
                    if length & 3:
                        padded = end + 4 - (length & 3)
                        if data[end:padded] != _ZEROS[: padded - end]:
                            if pads is None:
                                pads = {}
                            pads[len(attributes) - 1] = data[end:padded]
                offset = end + (-length & 3)
                continue
            if end > size:
                raise StunParseError(f"attribute {attribute_name(attr_type)} overruns the message")
            if fp_at >= 0:
                pass  # nothing counts after FINGERPRINT
            elif attr_type == _FP:
                fp_at = offset
                append((attr_type, data[offset + 4 : end]))
            elif attr_type == _MI256:
                if mi256_at < 0:
                    mi256_at = offset
                    append((attr_type, data[offset + 4 : end]))
            elif mi_at < 0 and mi256_at < 0:
                mi_at = offset
                append((attr_type, data[offset + 4 : end]))
            signed = True
            offset = end + (-length & 3)
        if offset != size:
            raise StunParseError("attribute padding overruns the message")

        message = cls.__new__(cls)
        message.method, message.message_class = split
        message.transaction_id = transaction_id
        message.attributes = attributes
        message._raw = data
        message._mi_at = mi_at
        message._mi256_at = mi256_at
        message._fp_at = fp_at
        message._pads = pads
        return message

    # -- reading ----------------------------------------------------------------

    def get(self, attr_type: int, default: Any = None) -> Any:
        """The decoded value of the first ``attr_type`` attribute, or ``default``."""
        for t, value in self.attributes:
            if t == attr_type:
                decode = DECODERS.get(t)
                return value if decode is None else decode(value, self.transaction_id)
        return default

    def get_all(self, attr_type: int) -> list[Any]:
        return [self._decode(t, v) for t, v in self.attributes if t == attr_type]

    def get_raw(self, attr_type: int) -> bytes | None:
        for t, value in self.attributes:
            if t == attr_type:
                return value
        return None

    def __contains__(self, attr_type: int) -> bool:
        for t, _ in self.attributes:
            if t == attr_type:
                return True
        return False

    def _decode(self, attr_type: int, value: bytes) -> Any:
        decode = DECODERS.get(attr_type)
        return value if decode is None else decode(value, self.transaction_id)

    def unknown_comprehension_required(self) -> list[int]:
        """Attribute types < 0x8000 with no registered codec (for a 420 answer, section 6.3.1)."""
        unknown: list[int] = []
        for t, _ in self.attributes:
            if t < 0x8000 and codec_for(t) is None and t not in unknown:
                unknown.append(t)
        return unknown

    def items(self) -> Iterator[tuple[str, Any]]:
        for t, v in self.attributes:
            yield attribute_name(t), self._decode(t, v)

    # -- integrity ----------------------------------------------------------------

    @property
    def has_integrity(self) -> bool:
        return self._mi_at >= 0

    @property
    def has_integrity_sha256(self) -> bool:
        return self._mi256_at >= 0

    @property
    def has_fingerprint(self) -> bool:
        return self._fp_at >= 0

    def check_integrity(self, key: bytes) -> bool:
        """Verify MESSAGE-INTEGRITY (HMAC-SHA1, section 14.5) in constant time."""
        return self._check_hmac(self._mi_at, key, "sha1", _MI_SIZES)

    def check_integrity_sha256(self, key: bytes) -> bool:
        """Verify MESSAGE-INTEGRITY-SHA256 (section 14.6); a truncated HMAC is allowed."""
        return self._check_hmac(self._mi256_at, key, "sha256", _MI256_SIZES)

    def _check_hmac(self, at: int, key: bytes, digest: str, sizes: tuple[int, ...]) -> bool:
        raw = self._raw
        if at < 0 or raw is None:
            return False
        (size,) = _unpack_length(raw, at + 2)
        if size not in sizes:
            return False  # an empty or short value would match a prefix of any MAC
        # The length field counts up to the end of this attribute (section 14.5).
        mac = _hmac(key, raw[:2] + _LENGTH.pack(at - HEADER_LENGTH + 4 + size) + raw[4:at], digest)
        return hmac.compare_digest(mac[:size], raw[at + 4 : at + 4 + size])

    def check_fingerprint(self) -> bool:
        """Verify FINGERPRINT (CRC-32 XOR 0x5354554e, section 14.7)."""
        raw = self._raw
        at = self._fp_at
        if at < 0 or raw is None or raw[at + 2 : at + 4] != b"\x00\x04":
            return False
        crc = zlib.crc32(raw[:2] + _LENGTH.pack(at - HEADER_LENGTH + 8) + raw[4:at]) ^ FINGERPRINT_XOR
        return crc == _unpack_u32(raw, at + 4)[0]

    # -- convenience --------------------------------------------------------------

    def response(self, message_class: int = MessageClass.SUCCESS) -> Message:
        """An empty response to this request: same method and transaction id."""
        return Message(self.method, message_class, self.transaction_id)

    def error_response(self, code: int, reason: str) -> Message:
        return self.response(MessageClass.ERROR).add(attrs.ERROR_CODE, (code, reason))

    def __repr__(self) -> str:
        try:
            body = ", ".join(f"{name}={value!r}" for name, value in self.items())
        except StunParseError:
            body = f"{len(self.attributes)} attributes (some malformed)"
        return (
            f"Message({method_name(self.method)} {MessageClass(self.message_class).name}, "
            f"tid={self.transaction_id.hex()}, {body})"
        )
