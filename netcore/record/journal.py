"""The journal's wire format: segment headers and checksummed records, sans-IO.

A track's journal is a sequence of segment files; each segment is a header
followed by records, appended in arrival order and never rewritten::

    segment header (16 bytes)
        magic "NCRJ" | version u8 | reserved u8[3] | segment index u32 | reserved u32
    record (20 + length bytes)
        sync "NR" u16 | kind u8 | flags u8 | length u32 | arrival_ns i64 | body | crc32 u32

Integers are big-endian.  ``arrival_ns`` is the recorder's clock in
nanoseconds.  The CRC-32 (``zlib.crc32``, the ISO-HDLC polynomial) covers
the 16 header bytes and the body.  Bodies by kind:

* ``RTP`` (1): the RTP packet as received, after SRTP, before any rewriting;
* ``SENDER_REPORT`` (2): the SR's sender info,
  ``ssrc u32 | ntp u64 | rtp_timestamp u32 | packet_count u32 | octet_count u32``.

Reading back (:func:`parse_segment`) never raises on damage: a record whose
header or checksum does not hold is dropped and the reader looks for the
next ``NR`` whose record checks out, so one damaged record costs only that
record; a record cut short at the end of the last segment (the writer was
killed mid-write) is reported as a torn tail.  A CRC-32 lets one damaged
record in 2**32 through; the sync bytes only make the search cheap.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass, field

from netcore.errors import ParseError

__all__ = [
    "JournalParseError",
    "RecordKind",
    "Record",
    "SenderInfo",
    "SegmentContents",
    "SEGMENT_HEADER_SIZE",
    "RECORD_OVERHEAD",
    "MAX_BODY",
    "segment_header",
    "encode_record",
    "encode_rtp",
    "encode_sender_report",
    "parse_segment",
]

MAGIC = b"NCRJ"
VERSION = 1
SYNC = 0x4E52  # "NR"
_SYNC_BYTES = b"NR"
_SEGMENT = struct.Struct("!4sB3xII")
_HEADER = struct.Struct("!HBBIq")
_CRC = struct.Struct("!I")
_SENDER_INFO = struct.Struct("!IQIII")
SEGMENT_HEADER_SIZE = _SEGMENT.size  # 16
RECORD_OVERHEAD = _HEADER.size + _CRC.size  # 20
MAX_BODY = 1 << 16  # an RTP packet never comes near it; a larger length is damage


class JournalParseError(ParseError):
    """A journal file that is not one, or is damaged beyond its records (a bad segment header)."""


class RecordKind(enum.IntEnum):
    RTP = 1
    SENDER_REPORT = 2


@dataclass(frozen=True, slots=True)
class SenderInfo:
    """The part of an RTCP sender report (RFC 3550 section 6.4.1) that maps RTP time to wallclock."""

    ssrc: int
    ntp_timestamp: int  # 64-bit NTP format
    rtp_timestamp: int
    packet_count: int = 0
    octet_count: int = 0

    def serialize(self) -> bytes:
        return _SENDER_INFO.pack(self.ssrc, self.ntp_timestamp, self.rtp_timestamp,
                                 self.packet_count, self.octet_count)

    @classmethod
    def parse(cls, body: bytes) -> SenderInfo:
        if len(body) != _SENDER_INFO.size:
            raise JournalParseError("a sender report record has the wrong length")
        return cls(*_SENDER_INFO.unpack(body))


@dataclass(frozen=True, slots=True)
class Record:
    kind: int  # a RecordKind, or a kind from a later version (kept, not interpreted)
    arrival_ns: int
    body: bytes

    @property
    def arrival(self) -> float:
        """Arrival time in seconds of the recorder's clock."""
        return self.arrival_ns / 1e9


@dataclass(slots=True)
class SegmentContents:
    """What :func:`parse_segment` found in one segment."""

    index: int
    records: list[Record] = field(default_factory=list)
    damaged: int = 0  # stretches of bytes dropped between good records
    dropped_bytes: int = 0  # bytes in them
    torn_tail: bool = False  # the last record was cut short (the writer stopped mid-record)


def segment_header(index: int) -> bytes:
    """The 16 bytes that open segment ``index``."""
    return _SEGMENT.pack(MAGIC, VERSION, index, 0)


def encode_record(kind: int, arrival_ns: int, body: bytes) -> bytes:
    """One record: header, body, CRC-32 of both."""
    if len(body) > MAX_BODY:
        raise ValueError("a journal record body is limited to 64 KiB")
    head = _HEADER.pack(SYNC, kind, 0, len(body), arrival_ns)
    return head + body + _CRC.pack(zlib.crc32(body, zlib.crc32(head)))


def encode_rtp(packet: bytes, arrival: float) -> bytes:
    """The record of an RTP packet that arrived at ``arrival`` seconds."""
    return encode_record(RecordKind.RTP, round(arrival * 1e9), packet)


def encode_sender_report(info: SenderInfo, arrival: float) -> bytes:
    """The record of a sender report that arrived at ``arrival`` seconds."""
    return encode_record(RecordKind.SENDER_REPORT, round(arrival * 1e9), info.serialize())


def _record_at(data: bytes, pos: int) -> tuple[Record | None, int]:
    """The record at ``pos`` and its end; ``(None, 0)`` when damaged, ``(None, -1)`` when cut short."""
    end_header = pos + _HEADER.size
    if end_header > len(data):
        return None, -1
    sync, kind, _flags, length, arrival_ns = _HEADER.unpack_from(data, pos)
    if sync != SYNC or length > MAX_BODY:
        return None, 0
    end = end_header + length + _CRC.size
    if end > len(data):
        return None, -1
    body = data[end_header:end_header + length]
    (crc,) = _CRC.unpack_from(data, end - _CRC.size)
    if crc != zlib.crc32(body, zlib.crc32(data[pos:end_header])):
        return None, 0
    return Record(kind, arrival_ns, bytes(body)), end


def _next_good(data: bytes, pos: int) -> int:
    """The offset of the next record after ``pos`` that checks out, or ``len(data)``."""
    search = pos + 1
    while True:
        found = data.find(_SYNC_BYTES, search)
        if found < 0:
            return len(data)
        record, _ = _record_at(data, found)
        if record is not None:
            return found
        search = found + 1


def parse_segment(data: bytes) -> SegmentContents:
    """Every intact record of one segment file's bytes.

    Raises :class:`JournalParseError` only when the segment header itself is
    wrong (not a journal, or a version we do not read); damaged records are
    skipped and counted, a record cut short at the end sets ``torn_tail``.
    """
    if len(data) < SEGMENT_HEADER_SIZE:
        raise JournalParseError("a journal segment is shorter than its header")
    magic, version, index, _ = _SEGMENT.unpack_from(data)
    if magic != MAGIC:
        raise JournalParseError("not a journal segment (bad magic)")
    if version != VERSION:
        raise JournalParseError(f"journal segment version {version} is not supported")
    out = SegmentContents(index)
    pos = SEGMENT_HEADER_SIZE
    size = len(data)
    while pos < size:
        record, end = _record_at(data, pos)
        if record is not None:
            out.records.append(record)
            pos = end
            continue
        following = _next_good(data, pos)
        if end < 0 and following == size:
            out.torn_tail = True  # cut short, and nothing good after it: the writer stopped here
        else:
            out.damaged += 1
        out.dropped_bytes += following - pos
        pos = following
    return out
