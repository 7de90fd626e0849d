"""DTLS 1.2 record layer framing (RFC 6347 section 4.1) and the replay window.

A datagram carries one or more records; each has a 13-byte header:
type(1) version(2) epoch(2) sequence_number(6) length(2).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Iterator

from .errors import DtlsParseError

__all__ = [
    "ContentType",
    "Record",
    "ReplayWindow",
    "iter_records",
    "encode_record",
    "DTLS_1_0",
    "DTLS_1_2",
    "RECORD_HEADER_SIZE",
    "MAX_SEQUENCE",
    "AlertLevel",
    "AlertDescription",
    "encode_alert",
    "decode_alert",
]

DTLS_1_0 = 0xFEFF
DTLS_1_2 = 0xFEFD
DTLS_1_3 = 0xFEFC
RECORD_HEADER_SIZE = 13
MAX_SEQUENCE = (1 << 48) - 1
# RFC 6347 section 4.1 / RFC 5246 section 6.2.3: at most 2^14 + 2048 bytes.
MAX_RECORD_LENGTH = (1 << 14) + 2048

_HEADER = struct.Struct("!BHHHI")  # type, version, epoch, seq_hi(16), seq_lo(32), then length
_LENGTH = struct.Struct("!H")


class ContentType(enum.IntEnum):
    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23


class AlertLevel(enum.IntEnum):
    WARNING = 1
    FATAL = 2


class AlertDescription(enum.IntEnum):
    # RFC 5246 section 7.2
    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    record_overflow = 22
    handshake_failure = 40
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    decode_error = 50
    decrypt_error = 51
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    user_canceled = 90
    no_renegotiation = 100
    unsupported_extension = 110


@dataclass(slots=True, eq=False, repr=False)
class Record:
    """One record: the header fields and the (still protected) fragment."""

    content_type: int
    version: int
    epoch: int
    sequence_number: int
    fragment: bytes

    def encode(self) -> bytes:
        return encode_record(
            self.content_type, self.version, self.epoch, self.sequence_number, self.fragment
        )

    def __repr__(self) -> str:
        return (
            f"Record(type={self.content_type}, epoch={self.epoch}, "
            f"seq={self.sequence_number}, len={len(self.fragment)})"
        )


def encode_header(content_type: int, version: int, epoch: int, seq: int, length: int) -> bytes:
    return _HEADER.pack(content_type, version, epoch, seq >> 32, seq & 0xFFFFFFFF) + _LENGTH.pack(
        length
    )


def encode_record(content_type: int, version: int, epoch: int, seq: int, fragment: bytes) -> bytes:
    return encode_header(content_type, version, epoch, seq, len(fragment)) + fragment


def iter_records(datagram: bytes) -> Iterator[Record]:
    """Yield the records of ``datagram`` in order (RFC 6347 section 4.1.1).

    Raises :class:`DtlsParseError` at the first malformed record; records
    before it have already been yielded.
    """
    offset = 0
    end = len(datagram)
    while offset < end:
        if end - offset < RECORD_HEADER_SIZE:
            raise DtlsParseError("truncated record header")
        content_type, version, epoch, seq_hi, seq_lo = _HEADER.unpack_from(datagram, offset)
        (length,) = _LENGTH.unpack_from(datagram, offset + 11)
        if version >> 8 != 0xFE:
            raise DtlsParseError(f"not a DTLS record version: {version:#06x}")
        if length > MAX_RECORD_LENGTH:
            raise DtlsParseError("record too long")
        start = offset + RECORD_HEADER_SIZE
        offset = start + length
        if offset > end:
            raise DtlsParseError("truncated record")
        yield Record(content_type, version, epoch, (seq_hi << 32) | seq_lo, datagram[start:offset])


class ReplayWindow:
    """A sliding window of received sequence numbers (RFC 6347 section 4.1.2.6)."""

    __slots__ = ("size", "top", "bitmap")

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.top = -1  # highest sequence number accepted so far
        self.bitmap = 0  # bit i set: top - i was received

    def is_replay(self, seq: int) -> bool:
        """True when ``seq`` was seen already or is left of the window."""
        if seq > self.top:
            return False
        offset = self.top - seq
        if offset >= self.size:
            return True
        return bool((self.bitmap >> offset) & 1)

    def mark(self, seq: int) -> None:
        """Record ``seq`` as received; call only after the record authenticated."""
        if seq > self.top:
            shift = seq - self.top
            if shift >= self.size:
                self.bitmap = 1
            else:
                self.bitmap = ((self.bitmap << shift) | 1) & ((1 << self.size) - 1)
            self.top = seq
        else:
            self.bitmap |= 1 << (self.top - seq)


def encode_alert(level: int, description: int) -> bytes:
    return bytes((level, description))


def decode_alert(data: bytes) -> tuple[int, int]:
    if len(data) != 2:
        raise DtlsParseError("alert must be two bytes")
    return data[0], data[1]
