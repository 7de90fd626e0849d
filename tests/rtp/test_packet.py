"""RTP packet codec, header extensions, rewrite and RTX."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import rtp_fields, u16, u32
from netcore.errors import ParseError, UsageError
from netcore.rtp.errors import RtpParseError
from netcore.rtp.extensions import (
    ONE_BYTE_PROFILE,
    TWO_BYTE_PROFILE,
    URI_ABS_SEND_TIME,
    URI_AUDIO_LEVEL,
    URI_MID,
    URI_REPAIRED_RTP_STREAM_ID,
    URI_RTP_STREAM_ID,
    URI_TRANSPORT_CC,
    URI_VIDEO_ORIENTATION,
    AudioLevel,
    HeaderExtensionMap,
    VideoOrientation,
    encode_extensions,
)
from netcore.rtp.packet import RtpPacket, rewrite_header
from netcore.rtp.rtx import unwrap_rtx, wrap_rtx


one_byte_elements = st.lists(
    st.tuples(st.integers(1, 14), st.binary(min_size=1, max_size=16)), max_size=6
)
two_byte_elements = st.lists(
    st.tuples(st.integers(1, 255), st.binary(min_size=0, max_size=40)), max_size=6
)


@st.composite
def packets(draw, elements=st.one_of(one_byte_elements, two_byte_elements)):
    return dict(draw(rtp_fields()), extensions=draw(elements), padding=draw(st.integers(0, 255)))


@given(packets())
def test_build_parse_round_trip(fields):
    p = RtpPacket.build(**fields)
    q = RtpPacket.parse(p.serialize())
    assert q.serialize() == p.serialize()
    # build() fills the view itself: the same fields parse() finds.
    assert {k: getattr(p, k) for k in RtpPacket.__slots__} == {k: getattr(q, k) for k in RtpPacket.__slots__}
    assert q.payload_type == fields["payload_type"]
    assert q.sequence_number == fields["sequence_number"]
    assert q.timestamp == fields["timestamp"]
    assert q.ssrc == fields["ssrc"]
    assert q.marker == fields["marker"]
    assert q.payload == fields["payload"]
    assert list(q.csrcs) == fields["csrcs"]
    assert q.padding == fields["padding"]
    assert q.extensions == fields["extensions"]


@given(st.binary(max_size=80))
def test_arbitrary_bytes_give_packet_or_parse_error(data):
    try:
        p = RtpPacket.parse(data)
    except RtpParseError:
        return
    assert p.serialize() == data
    # Every lazy accessor either works or raises the parse error only.
    assert p.payload_offset <= p.payload_end <= len(data)
    p.payload, p.csrcs, p.extension_data, p.extension_profile  # noqa: B018
    try:
        p.extensions  # noqa: B018
    except RtpParseError:
        pass


@given(st.binary(min_size=12, max_size=80))
def test_mutated_valid_header_never_raises_other_errors(tail):
    data = bytes((0x90 | (tail[0] & 0x2F),)) + tail[1:]
    try:
        p = RtpPacket.parse(data)
        p.extensions  # noqa: B018
    except ParseError as exc:
        assert isinstance(exc, RtpParseError)


def test_build_rejects_bad_fields():
    for bad in (dict(ssrc=-1), dict(ssrc=2**32), dict(payload_type=128), dict(csrcs=[2**32])):
        fields = dict(payload_type=0, sequence_number=0, timestamp=0, ssrc=0) | bad
        with pytest.raises(UsageError):
            RtpPacket.build(**fields)


def test_rejects_bad_headers():
    good = RtpPacket.build(payload_type=96, sequence_number=1, timestamp=2, ssrc=3, payload=b"x")
    data = good.serialize()
    for bad in (
        data[:11],
        bytes((0x40,)) + data[1:],  # version 1
        bytes((0x81,)) + data[1:],  # one CSRC announced, none there
        bytes((0x90,)) + data[1:],  # extension announced, none there
        bytes((0xA0,)) + data[1:12] + b"\x00",  # padding count 0
        bytes((0xA0,)) + data[1:12] + b"\x05",  # padding longer than the payload
    ):
        with pytest.raises(RtpParseError):
            RtpPacket.parse(bad)


def test_one_byte_extension_wire_format():
    # RFC 8285 section 4.2 figure: ID 1 L=0 (1 byte), ID 2 L=1 (2 bytes), pad.
    profile, data = encode_extensions([(1, b"\xaa"), (2, b"\xbb\xcc")])
    assert profile == ONE_BYTE_PROFILE
    assert data == bytes([0x10, 0xAA, 0x21, 0xBB, 0xCC, 0, 0, 0])
    p = RtpPacket.build(
        payload_type=0, sequence_number=0, timestamp=0, ssrc=0, extensions=[(1, b"\xaa"), (2, b"\xbb\xcc")]
    )
    assert p.data[12:16] == b"\xbe\xde\x00\x02"
    assert p.extension(2) == b"\xbb\xcc" and p.extension(3) is None


def test_two_byte_form_when_needed_and_appbits_accepted():
    profile, data = encode_extensions([(20, b""), (1, bytes(17))])
    assert profile == TWO_BYTE_PROFILE
    assert data[:4] == bytes([20, 0, 1, 17])
    # appbits (low 4 bits of 0x100X) do not change decoding.
    p = RtpPacket.build(
        payload_type=0, sequence_number=0, timestamp=0, ssrc=0,
        extension_profile=0x100F, extension_data=data,
    )
    assert p.extensions == [(20, b""), (1, bytes(17))]


def test_one_byte_id_15_stops_processing_and_unknown_profile_is_opaque():
    p = RtpPacket.build(
        payload_type=0, sequence_number=0, timestamp=0, ssrc=0,
        extension_profile=ONE_BYTE_PROFILE, extension_data=bytes([0x10, 1, 0xF0, 0x10]),
    )
    assert p.extensions == [(1, b"\x01")]
    q = RtpPacket.build(
        payload_type=0, sequence_number=0, timestamp=0, ssrc=0,
        extension_profile=0x1234, extension_data=b"abcd",
    )
    assert q.extensions == [] and q.extension_data == b"abcd" and q.extension_profile == 0x1234


def test_extension_map_decodes_registered_uris():
    m = HeaderExtensionMap(
        {
            1: URI_MID,
            2: URI_RTP_STREAM_ID,
            3: URI_REPAIRED_RTP_STREAM_ID,
            4: URI_AUDIO_LEVEL,
            5: URI_ABS_SEND_TIME,
            6: URI_TRANSPORT_CC,
            7: URI_VIDEO_ORIENTATION,
        }
    )
    values = {
        URI_MID: "0",
        URI_RTP_STREAM_ID: "hi",
        URI_REPAIRED_RTP_STREAM_ID: "lo",
        URI_AUDIO_LEVEL: AudioLevel(voice=True, level=42),
        URI_ABS_SEND_TIME: 0x123456,
        URI_TRANSPORT_CC: 65535,
        URI_VIDEO_ORIENTATION: VideoOrientation(camera=1, flip=True, rotation=270),
    }
    p = RtpPacket.build(
        payload_type=111, sequence_number=0, timestamp=0, ssrc=0, extensions=m.encode(values)
    )
    assert m.decode(p.extensions) == values
    assert m.get(p.extensions, URI_AUDIO_LEVEL) == AudioLevel(True, 42)
    assert p.extension(4) == bytes([0x80 | 42])
    assert p.extension(7) == bytes([0b1111])
    with pytest.raises(UsageError):
        HeaderExtensionMap({1: URI_MID}).encode({URI_TRANSPORT_CC: 1})


@given(st.binary(max_size=4))
def test_extension_values_raise_parse_error_only(value):
    m = HeaderExtensionMap({1: URI_MID, 2: URI_TRANSPORT_CC, 3: URI_ABS_SEND_TIME, 4: URI_AUDIO_LEVEL})
    for ext_id in (1, 2, 3, 4, 5):
        try:
            m.get([(ext_id, value)], m.uri_of(ext_id) or "")
        except RtpParseError:
            pass


@given(packets(), u32, u16, u32, st.integers(0, 127))
def test_rewrite_changes_only_the_four_fields(fields, ssrc, seq, ts, pt):
    p = RtpPacket.build(**fields)
    q = RtpPacket.parse(bytes(rewrite_header(p.data, ssrc, seq, ts, pt)))
    assert (q.ssrc, q.sequence_number, q.timestamp, q.payload_type) == (ssrc, seq, ts, pt)
    assert q.marker == p.marker
    assert q.data[12:] == p.data[12:] and q.data[0] == p.data[0]


@given(packets(), u16, u32, st.integers(96, 127))
def test_rtx_round_trip(fields, rtx_seq, rtx_ssrc, rtx_pt):
    p = RtpPacket.build(**fields)
    rtx = wrap_rtx(p, rtx_pt, rtx_seq, rtx_ssrc)
    assert (rtx.payload_type, rtx.sequence_number, rtx.ssrc) == (rtx_pt, rtx_seq, rtx_ssrc)
    assert rtx.timestamp == p.timestamp and rtx.marker == p.marker
    assert rtx.payload[:2] == p.sequence_number.to_bytes(2, "big")
    back = unwrap_rtx(rtx, p.payload_type, p.ssrc)
    assert back.payload == p.payload
    assert (back.sequence_number, back.ssrc, back.payload_type) == (
        p.sequence_number, p.ssrc, p.payload_type,
    )
    assert back.extensions == p.extensions and back.csrcs == p.csrcs
    assert back.padding == 0


def test_unwrap_rtx_needs_the_osn():
    rtx = RtpPacket.build(payload_type=97, sequence_number=1, timestamp=2, ssrc=3, payload=b"x")
    with pytest.raises(RtpParseError):
        unwrap_rtx(rtx, 96, 4)


@given(packets(elements=one_byte_elements))
def test_in_place_extension_scan_matches_element_list(fields):
    p = RtpPacket.build(**fields)
    m = HeaderExtensionMap({i: f"urn:x:{i}" for i in range(1, 15)})
    for ext_id in range(1, 15):
        first = next((v for i, v in p.extensions if i == ext_id), None)
        assert p.extension(ext_id) == first
        assert m.value(p, f"urn:x:{ext_id}") == first
