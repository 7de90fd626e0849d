"""The STUN message: header, attributes in wire order, integrity and fingerprint.

RFC 8489 section 5 (header), 14 (attributes), 14.5-14.7 (MESSAGE-INTEGRITY,
MESSAGE-INTEGRITY-SHA256, FINGERPRINT). Parsing keeps the datagram and finds
where each attribute is; values are sliced out and decoded on access through
the attribute registry, so a relay that only needs a channel number or a peer
address pays for nothing else.

Every datagram of a STUN or TURN server goes through :meth:`Message.parse`,
and an interpreter loop over the attributes used to be most of its cost.
What that walk finds (which attributes count, where they and the signatures
are, any non-zero padding) depends only on the attribute headers, types and
lengths, and on the padding bytes of the attributes kept, never on the
values. A peer sends the same layout again and again (an agent's ICE checks
differ in transaction id, PRIORITY and MAC), so the result of one walk is kept
per message length, with a ``struct`` that reads all those header and padding
bytes in one ``unpack_from`` call. If they read the same in the next message
of that length, its walk would go exactly the same way and is skipped.
Two layouts are kept per length, the last matched tried first, because two
kinds of message of one length often alternate; a message matching neither
is walked and its layout replaces the older one. A hit costs about a
quarter of the old walk (a hit on the second layout under half), a miss
about twice it (building the struct). At most 512 layouts are kept (every length of a datagram within a
1500-byte MTU), the oldest going first, and a message of more than about 64
attributes is never cached, so whatever peers send the cache stays small.

Integrity and fingerprint attributes are always written last, in the order
MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256, FINGERPRINT (section 6.3), from
the keys passed to :meth:`Message.encode`; any such attributes already in the
attribute list are replaced. Re-encoding a parsed message with the same key
therefore gives back the same bytes.
"""

from __future__ import annotations

import enum
import hmac
import os
import struct
import zlib
from typing import Any, Callable, Iterator, Sequence

from netcore.errors import UsageError
from netcore.stun import attributes as attrs
from netcore.stun import compiled
from netcore.stun.attributes import DECODERS, ENCODERS, MAGIC_COOKIE, SHAPES, attribute_name
from netcore.stun.errors import StunParseError
from netcore.stun.keyed_hmac import KeyedStates

__all__ = [
    "Message",
    "MessageClass",
    "BINDING",
    "register_method",
    "method_name",
    "random_transaction_id",
    "FINGERPRINT_XOR",
    "read_request",
    "RequestRead",
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
_PADDING = (b"", bytes(3), bytes(2), bytes(1))  # zero padding by value length & 3
_pack_tlv = _TLV.pack


_ALGORITHM_TYPES = frozenset((attrs.PASSWORD_ALGORITHM, attrs.PASSWORD_ALGORITHMS))
_decode_string = attrs.decode_string  # the codec of USERNAME, REALM and NONCE

_SHA1_STATES = KeyedStates("sha1")
_SHA256_STATES = KeyedStates("sha256")
_compare_digest = hmac.compare_digest


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
_TYPE_CODES: dict[tuple[int, int], int] = {}  # (method, class) -> message type, the other way
_SUCCESS = int(MessageClass.SUCCESS)
_unpack_header = HEADER.unpack_from
_unpack_tlv = _TLV.unpack_from
_unpack_length = _LENGTH.unpack_from
_unpack_u32 = _U32.unpack_from


# -- where the attributes are (section 14) ------------------------------------

# What may still count after each signature (sections 14.5-14.7); any other
# attribute after it is ignored. Before the first signature everything counts.
_COUNTING_AFTER: dict[int, frozenset[int]] = {
    _MI: frozenset((_MI256, _FP)),
    _MI256: frozenset((_FP,)),
    _FP: frozenset(),
}

# Signature value lengths that can verify: sections 14.5, 14.6 (a truncated
# HMAC-SHA256 of at least 16 bytes, in whole words) and 14.7.
_SIGNATURE_SIZES: dict[int, tuple[int, ...]] = {_MI: (20,), _MI256: (16, 20, 24, 28, 32), _FP: (4,)}

# (at, value, length field, length): a signature attribute's offset, the slice
# of its value, and the header length field its MAC or CRC was computed with
# (it counts up to the end of the signature), None when the header already
# has it; the same length as a number (-1 for None), for the compiled codec.
_Signature = tuple[int, slice, "bytes | None", int]


class _Layout:
    """Where a message's attributes are: the outcome of one walk.

    ``spans`` are the attributes that count, as ``(type, slice of the
    datagram)`` in wire order, ``types`` their types; ``first`` maps each type to its first slice.
    ``pads`` holds the padding of attributes whose padding is not zero, by
    index. ``mi``, ``mi256``, ``fp`` are what checking each signature needs,
    or None if it is absent or of a length that cannot verify. ``unpack``
    reads every byte the walk depended on; ``expected`` is what it read from
    the walked message.
    """

    __slots__ = ("spans", "types", "first", "pads", "mi", "mi256", "fp", "unpack", "expected")

    def __init__(
        self,
        data: bytes,
        spans: tuple[tuple[int, slice], ...],
        pads: dict[int, bytes] | None,
        signatures: dict[int, _Signature],
        reader: struct.Struct,
    ) -> None:
        self.spans = spans
        self.types = tuple(t for t, _ in spans)
        self.first = dict(reversed(spans))  # the first of each type wins
        self.pads = pads
        self.mi = signatures.get(_MI)
        self.mi256 = signatures.get(_MI256)
        self.fp = signatures.get(_FP)
        self.unpack = reader.unpack_from
        self.expected = self.unpack(data)


def _walk(data: bytes, size: int) -> _Layout:
    """Find the attributes of a message whose header checked out (section 14).

    Builds as it goes the struct format that reads back every byte the
    outcome depends on: each attribute header, and the padding of the
    attributes kept (only to re-encode non-zero padding).
    """
    spans: list[tuple[int, slice]] = []
    pads: dict[int, bytes] | None = None
    signatures: dict[int, _Signature] = {}
    counting: frozenset[int] | None = None  # None: everything counts
    fmt, read_to = ["!"], 0
    offset = HEADER_LENGTH
    while offset < size:
        attr_type, length = _unpack_tlv(data, offset)  # offset + 4 <= size: both are multiples of 4
        end = offset + 4 + length
        if end > size:
            raise StunParseError(f"attribute {attribute_name(attr_type)} overruns the message")
        fmt.append(f"{offset - read_to}xHH")
        read_to = offset + 4
        padded = end + (-length & 3)
        if counting is None or attr_type in counting:
            where = slice(read_to, end)
            spans.append((attr_type, where))
            if attr_type in _COUNTING_AFTER:
                counting = _COUNTING_AFTER[attr_type]
                if length in _SIGNATURE_SIZES[attr_type]:
                    # The length field it was computed with counts up to its end (14.5-14.7).
                    field = None if end == size else end - HEADER_LENGTH
                    signatures[attr_type] = (offset, where, None if field is None else _LENGTH.pack(field),
                                             -1 if field is None else field)
            elif padded > end:
                fmt.append(f"{end - read_to}x{padded - end}s")
                read_to = padded
                if data[end:padded] != _ZEROS[: padded - end]:
                    if pads is None:
                        pads = {}
                    pads[len(spans) - 1] = data[end:padded]
        offset = padded
    if offset != size:
        raise StunParseError("attribute padding overruns the message")
    return _Layout(data, tuple(spans), pads, signatures, struct.Struct("".join(fmt)))


_LAYOUTS: dict[int, _Layout] = {}  # message length -> the layout last walked at that length
_EARLIER: dict[int, _Layout] = {}  # message length -> the one walked before it (two layouts alternate)
_LAYOUTS_MAX = 512  # every length a datagram within a 1500-byte MTU can have
_LAYOUT_FIELDS_MAX = 160  # headers and padding read back; about 64 attributes, more are walked every time
_UNPARSED = _walk(bytes(HEADER_LENGTH), HEADER_LENGTH)  # a built message: no signatures read


def clear_layout_cache() -> None:
    """Forget every cached layout (tests use it to compare with a cold walk)."""
    _LAYOUTS.clear()
    _EARLIER.clear()


def _layout_missed(data: bytes, size: int) -> _Layout:
    """The layout when the last one of this length did not match: the one before it, or a walk.

    Two layouts per length, because two kinds of message of one length often
    alternate (a TURN client sending to an IPv4 and an IPv6 peer, say); the
    one that matched last is tried first.
    """
    earlier = _EARLIER.get(size)
    if earlier is not None and earlier.unpack(data) == earlier.expected:
        _EARLIER[size] = _LAYOUTS[size]
        _LAYOUTS[size] = earlier
        return earlier
    layout = _walk(data, size)
    if len(layout.expected) <= _LAYOUT_FIELDS_MAX:  # bounded in what one layout holds
        last = _LAYOUTS.pop(size, None)
        if last is not None:
            _EARLIER[size] = last
        elif len(_LAYOUTS) >= _LAYOUTS_MAX:  # and in count, oldest out
            oldest = next(iter(_LAYOUTS))
            del _LAYOUTS[oldest]
            _EARLIER.pop(oldest, None)
        _LAYOUTS[size] = layout
    return layout


def _verify_hmac(raw: bytes, signature: _Signature | None, key: bytes, states: KeyedStates) -> bool:
    """Check a MESSAGE-INTEGRITY(-SHA256) value in constant time (sections 14.5, 14.6)."""
    if signature is None:
        return False
    at, where, length_field, length = signature  # the compiled codec checks it in Message.check_integrity(-SHA256)
    # Covered: the message up to the attribute, the header's length field counting to its end.
    covered = raw[:at] if length_field is None else raw[:2] + length_field + raw[4:at]
    mac = raw[where]
    return _compare_digest(states[key].digest(covered)[: len(mac)], mac)


_UNKNOWN: dict[tuple[int, ...], tuple[int, ...]] = {}  # attribute types in order -> the unknown required ones
_UNKNOWN_MAX = 1024
_unknown_registered = len(DECODERS)  # how many types had codecs when _UNKNOWN was filled


def _unknown_in(types: tuple[int, ...]) -> tuple[int, ...]:
    """The comprehension-required types among ``types`` without a codec, each once, in order.

    Kept per sequence of types, at most ``_UNKNOWN_MAX`` of them (cleared when
    full). Codecs are only ever added (a type re-registered keeps one), so
    the number registered tells whether the kept answers still hold.
    """
    global _unknown_registered
    if _unknown_registered != len(DECODERS):
        _UNKNOWN.clear()
        _unknown_registered = len(DECODERS)
    unknown = _UNKNOWN.get(types)
    if unknown is None:
        found: list[int] = []
        for t in types:
            if t < 0x8000 and t not in DECODERS and t not in found:
                found.append(t)
        if len(_UNKNOWN) >= _UNKNOWN_MAX:
            _UNKNOWN.clear()
        unknown = _UNKNOWN[types] = tuple(found)
    return unknown


# What read_request gives: the message, FINGERPRINT's verdict (None when absent), the unknown
# comprehension-required attribute types, which MESSAGE-INTEGRITY is present (0 none, 1 MESSAGE-INTEGRITY,
# 2 MESSAGE-INTEGRITY-SHA256) and long_term_credentials() (None when not read: see read_request).
RequestRead = tuple["Message", "bool | None", tuple[int, ...], int,
                    "tuple[str | None, str | None, str | None, bool] | None"]


def read_request(data: bytes) -> RequestRead:
    """:meth:`Message.parse`, and what a server reads of every request before it decides anything, in one call.

    A STUN or TURN server checks FINGERPRINT (section 7.3), looks for unknown comprehension-required attributes
    (section 6.3.1), sees which MESSAGE-INTEGRITY is there and reads USERNAME, REALM and NONCE (section 9.2.4)
    on every request: with the compiled codec, a datagram whose layout is cached is all that in one call into
    C (five Python calls and as many into C before); otherwise the methods below, which give the same. Raises
    StunParseError as ``parse`` does. The credentials are None when they were not read here (the Python path,
    which reads them only for a request that is checked, or a text that is not UTF-8): then
    :meth:`Message.long_term_credentials` gives them, or raises their error, when a check asks for them.
    """
    codec = compiled.codec
    if codec is not None:
        read = codec.request(data, _LAYOUTS, _TYPES, Message, DECODERS)
        if read is not None:
            return read
    message = Message.parse(data)
    first = message._layout.first
    return (message, message.check_fingerprint() if _FP in first else None,
            _unknown_in(message._layout.types), 2 if _MI256 in first else 1 if _MI in first else 0, None)


def random_transaction_id(random: Callable[[int], bytes] = os.urandom) -> bytes:
    return random(12)


class Message:
    """One STUN message.

    ``attributes`` is the list of ``(type, raw_value)`` in wire order, repeats
    kept; a parsed message makes it from its datagram on first use.
    :meth:`get` decodes a value through the attribute registry.
    """

    __slots__ = ("method", "message_class", "transaction_id", "_attributes", "_raw", "_layout")

    def __init__(
        self,
        method: int,
        message_class: int,
        transaction_id: bytes | None = None,
        attributes: list[tuple[int, bytes]] | None = None,
    ) -> None:
        if transaction_id is None:
            # For applications building one message; cores pass an id drawn
            # from their injected random source, so a test can replay them.
            transaction_id = os.urandom(12)
        elif len(transaction_id) != 12:
            raise UsageError("a transaction id is 12 bytes")
        self.method = method
        self.message_class = message_class
        self.transaction_id = transaction_id
        self._attributes: list[tuple[int, bytes]] | None = attributes if attributes is not None else []
        self._raw: bytes | None = None
        self._layout = _UNPARSED

    @property
    def attributes(self) -> list[tuple[int, bytes]]:
        # Builders read _attributes directly when set: they run per packet too.
        attributes = self._attributes
        if attributes is None:  # parsed, not yet asked for
            raw = self._raw
            attributes = self._attributes = [(t, raw[where]) for t, where in self._layout.spans]
        return attributes

    @attributes.setter
    def attributes(self, attributes: list[tuple[int, bytes]]) -> None:
        self._attributes = attributes

    # -- building ---------------------------------------------------------------

    def add(self, attr_type: int, value: Any = True) -> Message:
        """Append an attribute, encoding ``value`` with the registered codec."""
        encode = ENCODERS.get(attr_type)
        if encode is None:
            raise UsageError(f"no codec registered for attribute {attr_type:#06x}; use add_raw")
        attributes = self._attributes if self._attributes is not None else self.attributes
        attributes.append((attr_type, encode(value, self.transaction_id)))
        return self

    def add_raw(self, attr_type: int, value: bytes) -> Message:
        if not 0 <= attr_type <= 0xFFFF or len(value) > 0xFFFF:
            raise UsageError("attribute type or value length out of range")
        attributes = self._attributes if self._attributes is not None else self.attributes
        attributes.append((attr_type, bytes(value)))
        return self

    def encode(
        self,
        integrity_key: bytes | None = None,
        *,
        integrity_sha256_key: bytes | None = None,
        fingerprint: bool = False,
    ) -> bytes:
        """Serialize; sign with MESSAGE-INTEGRITY(-SHA256) and add FINGERPRINT as asked."""
        pads = self._layout.pads
        attributes = self._attributes if self._attributes is not None else self.attributes
        message_type = _TYPE_CODES.get((self.method, self.message_class))
        if message_type is None:
            message_type = _message_type(self.method, self.message_class)
            if len(_TYPE_CODES) < 16384:  # every (12-bit method, class) at most
                _TYPE_CODES[(self.method, self.message_class)] = message_type
        codec = compiled.codec
        if codec is not None:
            encoded = codec.encode(message_type, self.transaction_id, attributes, pads,
                                   None if integrity_key is None else _SHA1_STATES[integrity_key],
                                   None if integrity_sha256_key is None else _SHA256_STATES[integrity_sha256_key],
                                   fingerprint)
            if encoded is not None:
                return encoded  # else something it does not take (too long, not bytes): Python says what
        parts: list[bytes] = []
        append = parts.append
        for index, (attr_type, value) in enumerate(attributes):
            if attr_type in _SIGNATURES:
                continue
            length = len(value)
            append(_pack_tlv(attr_type, length))
            append(value)
            if length & 3:
                pad = pads.get(index) if pads else None  # a parsed message's non-zero padding, kept
                append(pad if pad is not None else _PADDING[length & 3])
        body = b"".join(parts)
        if integrity_key is not None:
            body += self._signature(message_type, body, _MI, 20, integrity_key, _SHA1_STATES)
        if integrity_sha256_key is not None:
            body += self._signature(message_type, body, _MI256, 32, integrity_sha256_key, _SHA256_STATES)
        if fingerprint:
            head = HEADER.pack(message_type, len(body) + 8, MAGIC_COOKIE, self.transaction_id)
            crc = zlib.crc32(body, zlib.crc32(head)) ^ FINGERPRINT_XOR
            body += _TLV.pack(_FP, 4) + _U32.pack(crc)
        return HEADER.pack(message_type, len(body), MAGIC_COOKIE, self.transaction_id) + body

    def _signature(
        self, message_type: int, body: bytes, attr_type: int, size: int, key: bytes, states: KeyedStates
    ) -> bytes:
        # Section 14.5: the length field counts up to the end of the integrity attribute.
        head = HEADER.pack(message_type, len(body) + 4 + size, MAGIC_COOKIE, self.transaction_id)
        return _TLV.pack(attr_type, size) + states[key].digest(head + body)

    # -- parsing ------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes) -> Message:
        """Parse one whole datagram; raise StunParseError if it is not STUN.

        Checks the header (section 5), then finds the attributes with the
        rules on what may follow MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256
        and FINGERPRINT (sections 14.5-14.7): from the layout cache when the
        message's attribute headers match the last message of its length,
        else by walking them.
        """
        codec = compiled.codec
        if codec is not None:  # the cache hit below in one call; None: whatever else, the code below
            message = codec.parse(data, _LAYOUTS, _TYPES, cls)
            if message is not None:
                return message
        size = len(data)
        if size < HEADER_LENGTH:
            raise StunParseError(f"{size} bytes is shorter than a STUN header")
        if type(data) is not bytes:
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
        message = cls.__new__(cls)
        message.method, message.message_class = split
        message.transaction_id = transaction_id
        message._attributes = None
        message._raw = data
        layout = _LAYOUTS.get(size)
        if layout is None or layout.unpack(data) != layout.expected:
            layout = _layout_missed(data, size)
        message._layout = layout
        return message

    # -- reading ----------------------------------------------------------------

    def get(self, attr_type: int, default: Any = None) -> Any:
        """The decoded value of the first ``attr_type`` attribute, or ``default``."""
        if self._attributes is None:
            codec = compiled.codec
            if codec is not None:  # the lines below in one call, the decoders of attributes.SHAPES read in C
                return codec.get(self._raw, self._layout.first, self.transaction_id, attr_type, default, DECODERS,
                                 SHAPES)
            where = self._layout.first.get(attr_type)
            if where is None:
                return default
            value = self._raw[where]
        else:
            for t, value in self._attributes:
                if t == attr_type:
                    break
            else:
                return default
        decode = DECODERS.get(attr_type)
        return value if decode is None else decode(value, self.transaction_id)

    def long_term_credentials(self) -> tuple[str | None, str | None, str | None, bool]:
        """USERNAME, REALM and NONCE (None where absent), and whether PASSWORD-ALGORITHM(S) is present.

        What the long-term credential check (RFC 8489 section 9.2.4) reads of
        every request, in one call rather than five: a TURN server pays it on
        every request it answers.
        """
        if self._attributes is not None:  # built, or its attributes asked for: the general path
            return (self.get(attrs.USERNAME), self.get(attrs.REALM), self.get(attrs.NONCE),
                    attrs.PASSWORD_ALGORITHM in self or attrs.PASSWORD_ALGORITHMS in self)
        first = self._layout.first
        raw = self._raw
        codec = compiled.codec
        if codec is not None:
            credentials = codec.credentials(raw, first)  # the lines below in one call
            if credentials is not None:
                return credentials  # else a text that is not UTF-8: the lines below raise its error
        try:  # the three decoded in line, as their codec (attributes.decode_string) does
            where = first.get(attrs.USERNAME)
            username = None if where is None else raw[where].decode()
            where = first.get(attrs.REALM)
            realm = None if where is None else raw[where].decode()
            where = first.get(attrs.NONCE)
            nonce = None if where is None else raw[where].decode()
        except UnicodeDecodeError:
            _decode_string(raw[where])  # raises the codec's StunParseError for this attribute
            raise
        return username, realm, nonce, not _ALGORITHM_TYPES.isdisjoint(first)

    def get_all(self, attr_type: int) -> list[Any]:
        return [self._decode(t, v) for t, v in self.attributes if t == attr_type]

    def get_raw(self, attr_type: int) -> bytes | None:
        if self._attributes is None:
            where = self._layout.first.get(attr_type)
            return None if where is None else self._raw[where]
        for t, value in self._attributes:
            if t == attr_type:
                return value
        return None

    def __contains__(self, attr_type: int) -> bool:
        if self._attributes is None:
            return attr_type in self._layout.first
        for t, _ in self._attributes:
            if t == attr_type:
                return True
        return False

    def _decode(self, attr_type: int, value: bytes) -> Any:
        decode = DECODERS.get(attr_type)
        return value if decode is None else decode(value, self.transaction_id)

    def unknown_comprehension_required(self) -> list[int]:
        """Attribute types < 0x8000 with no registered codec (for a 420 answer, section 6.3.1).

        The answer depends only on the attribute types in order, and a server
        sees few such sequences (one per kind of request a client sends), so
        it is kept per sequence; see :func:`_unknown_in`.
        """
        if self._attributes is None:
            types = self._layout.types
        else:
            types = tuple(t for t, _ in self._attributes)
        return list(_unknown_in(types))

    def items(self) -> Iterator[tuple[str, Any]]:
        for t, v in self.attributes:
            yield attribute_name(t), self._decode(t, v)

    # -- integrity ----------------------------------------------------------------

    @property
    def has_integrity(self) -> bool:
        return _MI in self._layout.first

    @property
    def has_integrity_sha256(self) -> bool:
        return _MI256 in self._layout.first

    @property
    def has_fingerprint(self) -> bool:
        return _FP in self._layout.first

    def check_integrity(self, key: bytes) -> bool:
        """Verify MESSAGE-INTEGRITY (HMAC-SHA1, section 14.5) in constant time."""
        codec = compiled.codec
        if codec is not None:  # _verify_hmac in one call into C: a server checks every request
            return codec.verify(_SHA1_STATES, key, self._raw, self._layout.mi)
        return _verify_hmac(self._raw, self._layout.mi, key, _SHA1_STATES)

    def check_integrity_sha256(self, key: bytes) -> bool:
        """Verify MESSAGE-INTEGRITY-SHA256 (section 14.6); a truncated HMAC is allowed."""
        codec = compiled.codec
        if codec is not None:
            return codec.verify(_SHA256_STATES, key, self._raw, self._layout.mi256)
        return _verify_hmac(self._raw, self._layout.mi256, key, _SHA256_STATES)

    def check_fingerprint(self) -> bool:
        """Verify FINGERPRINT (CRC-32 XOR 0x5354554e, section 14.7)."""
        fp = self._layout.fp
        if fp is None:
            return False
        raw = self._raw
        at, _, length_field, length = fp
        codec = compiled.codec
        if codec is not None:
            return codec.check_fingerprint(raw, at, length)
        # Covered: the message up to FINGERPRINT, the header's length field counting to its end.
        crc = zlib.crc32(raw[:at] if length_field is None else raw[:2] + length_field + raw[4:at])
        return crc ^ FINGERPRINT_XOR == _unpack_u32(raw, at + 4)[0]

    # -- convenience --------------------------------------------------------------

    def encode_response(
        self,
        attributes: Sequence[tuple[int, Any]] = (),
        integrity_key: bytes | None = None,
        *,
        integrity_sha256_key: bytes | None = None,
        fingerprint: bool = False,
    ) -> bytes:
        """This request's success response with ``attributes`` (``(type, value)``, through their codecs),
        encoded and signed as :meth:`encode` does: the bytes of ``response()``, ``add()`` per attribute and
        ``encode()``, in one call.

        A server answers most requests with a signed success of a few attributes; with the compiled codec
        this skips the response object and a call per attribute (the Python codec takes the long way).
        """
        codec = compiled.codec
        if codec is not None and (integrity_key is None or integrity_sha256_key is None):  # one key, or none
            sha256 = integrity_sha256_key is not None
            encoded = codec.respond(self.method, self.transaction_id, attributes, ENCODERS, SHAPES,
                                    _SHA256_STATES if sha256 else _SHA1_STATES,
                                    integrity_sha256_key if sha256 else integrity_key, sha256, fingerprint)
            if encoded is not None:
                return encoded  # else an attribute add() refuses: it says what is wrong
        response = self.response()
        for attr_type, value in attributes:
            response.add(attr_type, value)
        return response.encode(integrity_key, integrity_sha256_key=integrity_sha256_key, fingerprint=fingerprint)

    def response(self, message_class: int = MessageClass.SUCCESS) -> Message:
        """An empty response to this request: same method and transaction id."""
        response = Message.__new__(Message)  # every server answer: skip the checks the id already passed
        response.method = self.method
        response.message_class = message_class
        response.transaction_id = self.transaction_id
        response._attributes = []
        response._raw = None
        response._layout = _UNPARSED
        return response

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
