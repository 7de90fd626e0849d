"""The journal format: round trip, torn tails, damage, garbage."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netcore.record.journal import (
    RECORD_OVERHEAD,
    SEGMENT_HEADER_SIZE,
    JournalParseError,
    Record,
    RecordKind,
    SenderInfo,
    encode_record,
    encode_rtp,
    encode_sender_report,
    parse_segment,
    segment_header,
)

records_strategy = st.lists(
    st.tuples(st.sampled_from([RecordKind.RTP, RecordKind.SENDER_REPORT, 7]),
              st.integers(-(2**63), 2**63 - 1), st.binary(max_size=300)),
    min_size=1, max_size=12)


def build(records) -> bytes:
    return segment_header(3) + b"".join(encode_record(k, t, b) for k, t, b in records)


def as_records(records) -> list[Record]:
    return [Record(int(k), t, b) for k, t, b in records]


@given(records_strategy)
def test_records_read_back_as_written(records):
    contents = parse_segment(build(records))
    assert contents.index == 3
    assert contents.records == as_records(records)
    assert not contents.torn_tail and contents.damaged == 0


def test_rtp_and_sender_report_records_keep_their_fields():
    info = SenderInfo(0x1234, 0xE1E2E3E4_05060708, 0xDEADBEEF, 5, 700)
    data = segment_header(1) + encode_rtp(b"\x80" * 20, 12.5) + encode_sender_report(info, 13.25)
    rtp, sr = parse_segment(data).records
    assert (rtp.kind, rtp.arrival, rtp.body) == (RecordKind.RTP, 12.5, b"\x80" * 20)
    assert (sr.kind, sr.arrival, SenderInfo.parse(sr.body)) == (RecordKind.SENDER_REPORT, 13.25, info)
    assert len(encode_rtp(b"x" * 100, 0)) == 100 + RECORD_OVERHEAD


@settings(max_examples=40)
@given(records_strategy)
def test_a_torn_last_record_is_dropped_at_every_cut_and_nothing_before_it_is_lost(records):
    data = build(records)
    last = len(encode_record(*records[-1]))
    start = len(data) - last
    for cut in range(start, len(data)):
        contents = parse_segment(data[:cut])
        assert contents.records == as_records(records[:-1])
        assert contents.torn_tail == (cut > start)
        assert contents.damaged == 0


@given(records_strategy, st.data())
def test_random_damage_costs_only_the_records_it_touches(records, data):
    raw = bytearray(build(records))
    flips = data.draw(st.lists(st.integers(SEGMENT_HEADER_SIZE, len(raw) - 1), min_size=1, max_size=3, unique=True))
    for pos in flips:
        raw[pos] ^= data.draw(st.integers(1, 255))
    contents = parse_segment(bytes(raw))
    # Which records the damage touched
    spans, pos = [], SEGMENT_HEADER_SIZE
    for k, t, b in records:
        size = len(encode_record(k, t, b))
        spans.append((pos, pos + size))
        pos += size
    intact = [Record(int(k), t, b) for (k, t, b), (lo, hi) in zip(records, spans)
              if not any(lo <= f < hi for f in flips)]
    # every untouched record comes back, and nothing that was not written
    assert contents.records == intact
    assert contents.damaged + contents.torn_tail >= 1


@given(st.binary(max_size=400))
def test_garbage_gives_a_journal_parse_error_or_no_records(data):
    try:
        contents = parse_segment(data)
    except JournalParseError:
        return
    assert contents.records == [] or data.startswith(b"NCRJ")


@given(st.binary(max_size=400))
def test_garbage_after_a_good_header_never_raises(data):
    contents = parse_segment(segment_header(1) + data)
    assert contents.dropped_bytes <= len(data)


def test_a_foreign_file_or_version_is_refused():
    for data in (b"", b"RIFF" + bytes(40), b"NCRJ\x02" + bytes(11)):
        try:
            parse_segment(data)
        except JournalParseError:
            continue
        raise AssertionError("accepted")
