"""RTCP packets: round trips, published layouts, bad input, compound rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import u8, u16, u32
from netcore.rtp.errors import RtcpParseError
from netcore.rtp.feedback import LARGE_DELTA, NOT_RECEIVED, SMALL_DELTA
from netcore.rtp.rtcp import (
    App,
    Bye,
    Feedback,
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    Remb,
    ReportBlock,
    SdesChunk,
    Sdes,
    SenderReport,
    TransportFeedback,
    UnknownRtcp,
    parse_rtcp,
    serialize_rtcp,
)

words = st.integers(0, 4).map(lambda n: n * 4).flatmap(lambda n: st.binary(min_size=n, max_size=n))

blocks = st.builds(
    ReportBlock, u32, u8, st.integers(-(1 << 23), (1 << 23) - 1), u32, u32, u32, u32
)
sr = st.builds(
    SenderReport, u32, st.integers(0, 2**64 - 1), u32, u32, u32,
    st.lists(blocks, max_size=4), words,
)
rr = st.builds(ReceiverReport, u32, st.lists(blocks, max_size=4), words)
sdes_items = st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=20)), max_size=4)
sdes = st.builds(Sdes, st.lists(st.builds(SdesChunk, u32, sdes_items), max_size=4))
bye = st.builds(Bye, st.lists(u32, max_size=5), st.none() | st.binary(max_size=30))
app = st.builds(App, st.integers(0, 31), u32, st.binary(min_size=4, max_size=4), words)
nack = st.builds(
    Nack, u32, u32,
    st.tuples(u16, st.sets(st.integers(0, 3000), max_size=40)).map(
        lambda t: [(t[0] + d) & 0xFFFF for d in sorted(t[1])]
    ),
)


@st.composite
def twcc(draw):
    arrivals = draw(
        st.lists(
            st.none() | st.integers(0, 255) | st.integers(-0x8000, 0x7FFF),
            max_size=300,
        )
    )
    # Long runs exercise run-length chunks.
    if draw(st.booleans()):
        arrivals = arrivals + [draw(st.none() | st.integers(0, 255))] * draw(st.integers(0, 9000))
    return TransportFeedback.from_arrivals(
        draw(u32), draw(u32), draw(u16), draw(st.integers(0, 0xFFFFFF)), draw(u8), arrivals
    )


pli = st.builds(Pli, u32, u32)
fir = st.builds(Fir, u32, u32, st.lists(st.tuples(u32, u8), max_size=4))
remb = st.builds(
    Remb, u32,
    st.tuples(st.integers(0, 0x3FFFF), st.integers(0, 20)).map(lambda t: t[0] << t[1]),
    st.lists(u32, max_size=4), u32,
)
generic = st.builds(Feedback, st.sampled_from([205, 206]), st.sampled_from([2, 3, 5, 7]), u32, u32, words)
unknown = st.builds(UnknownRtcp, st.sampled_from([195, 207, 210]), st.integers(0, 31), words)
any_packet = st.one_of(sr, rr, sdes, bye, app, nack, twcc(), pli, fir, remb, generic, unknown)


@given(st.lists(any_packet, min_size=1, max_size=5))
def test_compound_round_trip(packets):
    data = serialize_rtcp(packets)
    assert parse_rtcp(data) == packets
    assert serialize_rtcp(parse_rtcp(data)) == data


@given(st.binary(max_size=120))
def test_arbitrary_bytes_give_packets_or_parse_error(data):
    try:
        parse_rtcp(data)
    except RtcpParseError:
        pass


@given(st.lists(any_packet, min_size=1, max_size=3), st.binary(min_size=4, max_size=40))
def test_bad_tail_keeps_the_good_prefix(packets, tail):
    good = serialize_rtcp(packets)
    bad = bytes((0x80 | (tail[0] & 0x1F), 201)) + b"\xff\xff" + tail[4:]  # length overruns
    with pytest.raises(RtcpParseError) as info:
        parse_rtcp(good + bad)
    assert list(info.value.packets) == packets


def test_sender_report_layout():
    # RFC 3550 section 6.4.1, field by field.
    sr = SenderReport(
        ssrc=0x01020304, ntp_timestamp=0x1112131415161718, rtp_timestamp=0x21222324,
        packet_count=5, octet_count=6,
        reports=[ReportBlock(0x31323334, 0x80, -2, 0x41424344, 7, 0x51525354, 0x61626364)],
    )
    assert sr.serialize().hex() == (
        "81c8000c" "01020304" "1112131415161718" "21222324" "00000005" "00000006"
        "31323334" "80fffffe" "41424344" "00000007" "51525354" "61626364"
    )


def test_sdes_chunks_are_word_aligned():
    data = Sdes([SdesChunk(1, [(1, b"abc")]), SdesChunk(2, [])]).serialize()
    # chunk 1: ssrc, 01 03 'abc', one null octet -> 4 + 5 + 1 = 10, pad to 12.
    assert data.hex() == "82ca0005" "00000001" "0103616263000000" "00000002" "00000000"


def test_nack_wraps_around_and_packs_bitmask():
    data = Nack(1, 2, [65534, 65535, 0, 1, 40]).serialize()
    assert data[12:].hex() == "fffe0007" "00280000"
    assert parse_rtcp(data)[0].lost == [65534, 65535, 0, 1, 40]


def test_twcc_both_chunk_kinds_on_the_wire():
    fb = TransportFeedback.from_arrivals(1, 2, 100, 5, 9, [1, 2, None, 300] + [None] * 20)
    data = fb.serialize()
    # statuses: 1,1,0,2 then 20 x 0: a two-bit vector for the first 7, then run length.
    chunks = data[20:24]
    assert chunks[0] >> 6 == 0b11  # status vector, two-bit symbols
    assert chunks[2] >> 7 == 0  # run length chunk
    assert parse_rtcp(data)[0] == fb
    assert fb.arrivals()[:4] == [(100, 1), (101, 2), (102, None), (103, 300)]
    ones = TransportFeedback.from_arrivals(1, 2, 0, 0, 0, [1, None] * 7)
    assert ones.serialize()[20] >> 6 == 0b10  # one-bit status vector
    assert parse_rtcp(ones.serialize())[0] == ones


def test_twcc_parses_chunks_written_by_hand():
    # draft-holmer section 3.1.3 example run: 221 packets "received small delta"
    # then a one-bit vector, deltas follow.
    fci = bytes.fromhex("0001" "00de" "00000a07") + bytes.fromhex("20dd") + bytes.fromhex("a000")
    fci += bytes(221) + b"\x04"
    payload = bytes.fromhex("00000001 00000002".replace(" ", "")) + fci
    payload += bytes(-len(payload) % 4)
    data = bytes((0x8F, 205)) + (len(payload) // 4).to_bytes(2, "big") + payload
    fb = parse_rtcp(data)[0]
    assert fb.statuses == [SMALL_DELTA] * 221 + [SMALL_DELTA]
    assert fb.reference_time == 0x0A and fb.fb_pkt_count == 7
    assert len(fb.deltas) == 222 and fb.deltas[-1] == 4


def test_twcc_reserved_symbol_is_a_parse_error():
    payload = bytes(8) + bytes.fromhex("0000000100000000") + bytes.fromhex("6001") + b"\x00\x00"
    data = bytes((0x8F, 205)) + (len(payload) // 4).to_bytes(2, "big") + payload
    with pytest.raises(RtcpParseError):
        parse_rtcp(data)


def test_remb_layout_matches_draft():
    data = Remb(1, 1_000_000, [0x11223344]).serialize()
    # 1e6 = 0xF4240 needs two shifts: exponent 2, mantissa 0x3D090.
    assert data[12:].hex() == "52454d42" "01" "0bd090" "11223344"


def test_reduced_size_and_strict_compound_rules():
    pli = Pli(1, 2).serialize()
    assert parse_rtcp(pli) == [Pli(1, 2)]
    with pytest.raises(RtcpParseError):
        parse_rtcp(pli, reduced_size=False)
    rr = ReceiverReport(1).serialize()
    assert parse_rtcp(rr + pli, reduced_size=False) == [ReceiverReport(1), Pli(1, 2)]
    padded_first = bytes((rr[0] | 0x20,)) + rr[1:3] + b"\x02" + bytes(7) + b"\x04"
    with pytest.raises(RtcpParseError):
        parse_rtcp(padded_first + pli, reduced_size=False)
    assert parse_rtcp(padded_first + pli) == [ReceiverReport(0), Pli(1, 2)]


def test_empty_and_bad_version():
    with pytest.raises(RtcpParseError):
        parse_rtcp(b"")
    with pytest.raises(RtcpParseError):
        parse_rtcp(b"\x40\xc9\x00\x01\x00\x00\x00\x01")


def test_statuses_constants():
    assert (NOT_RECEIVED, SMALL_DELTA, LARGE_DELTA) == (0, 1, 2)


def _pad_one(data: bytes, index: int, pad: int) -> bytes:
    """Set the P bit of the ``index``-th sub-packet and make its last
    ``pad`` octets padding: a peer's padded packet, aligned or not."""
    pos = 0
    for _ in range(index):
        pos += 4 + 4 * int.from_bytes(data[pos + 2 : pos + 4], "big")
    end = pos + 4 + 4 * int.from_bytes(data[pos + 2 : pos + 4], "big")
    if end - pos <= 4:
        return data
    pad = 1 + pad % (end - pos - 4)
    return data[:pos] + bytes((data[pos] | 0x20,)) + data[pos + 1 : end - 1] + bytes((pad,)) + data[end:]


@st.composite
def mutated_compounds(draw):
    """Valid compound packets, then padded, bit-flipped or cut by a peer."""
    packets = draw(st.lists(any_packet, min_size=1, max_size=4))
    data = serialize_rtcp(packets)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["pad", "flip", "cut"]))
        if kind == "pad":
            data = _pad_one(data, draw(st.integers(0, len(packets) - 1)), draw(st.integers(0, 64)))
        elif kind == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data = data[:i] + bytes((data[i] ^ draw(st.integers(1, 255)),)) + data[i + 1 :]
        elif data:
            data = data[: draw(st.integers(0, len(data)))]
    return data


def _assert_serializes(data: bytes) -> None:
    # Whatever parses must serialize, and what we serialize is canonical:
    # it parses back to the same packets and serializes to the same bytes.
    try:
        packets = parse_rtcp(data)
    except RtcpParseError:
        return
    again = serialize_rtcp(packets)
    assert serialize_rtcp(parse_rtcp(again)) == again


@settings(max_examples=400)
@given(st.binary(max_size=200))
def test_whatever_parses_from_random_bytes_serializes(data):
    _assert_serializes(data)


@settings(max_examples=400)
@given(mutated_compounds())
def test_whatever_parses_from_mutated_compounds_serializes(data):
    _assert_serializes(data)


@pytest.mark.parametrize(
    "packet",
    [App(1, 2, b"name", b"abcdefgh"), Feedback(205, 4, 1, 2, bytes(8)), ReceiverReport(1, extension=bytes(8))],
    ids=["APP", "RTPFB FMT 4", "RR"],
)
def test_padding_that_leaves_a_part_word_is_a_parse_error(packet):
    # RFC 3550 sections 6.4-6.7, RFC 4585 section 6.1: these bodies are whole
    # 32-bit words; padding (P bit, last octet = 3) that cuts into a word is
    # the peer's mistake, not a packet we could send back.
    data = _pad_one(packet.serialize(), 0, 2)
    with pytest.raises(RtcpParseError):
        parse_rtcp(data)


def test_unknown_types_and_twcc_keep_part_words_and_serialize():
    data = _pad_one(UnknownRtcp(207, 3, b"abcdefgh").serialize(), 0, 2)
    assert parse_rtcp(data) == [UnknownRtcp(207, 3, b"abcde")]
    assert parse_rtcp(serialize_rtcp(parse_rtcp(data))) == [UnknownRtcp(207, 3, b"abcde")]
