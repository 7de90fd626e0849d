"""VP8, H.264 and Opus payload formats, cross-checked with aiortc's codecs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netcore.rtp.errors import RtpParseError
from netcore.rtp.extensions import URI_AUDIO_LEVEL, AudioLevel, HeaderExtensionMap
from netcore.rtp.h264 import (
    FU_A,
    STAP_A,
    H264Packetizer,
    h264_depacketize,
    h264_frame_is_keyframe,
    h264_is_keyframe,
    h264_nal_types,
    split_annexb,
)
from netcore.rtp.opus import opus_audio_level, opus_duration, opus_packet
from netcore.rtp.packet import RtpPacket
from netcore.rtp.vp8 import (
    Vp8Descriptor,
    Vp8Packetizer,
    vp8_depacketize,
    vp8_is_keyframe,
    vp8_starts_frame,
)

import aiortc.codecs.vpx as vpx
import aiortc.codecs.h264 as h264

def _fix(d: Vp8Descriptor) -> Vp8Descriptor:
    # Fields that cannot survive the wire: a short picture ID holds 7 bits,
    # Y is only sent with TID.
    if d.picture_id is not None and not d.long_picture_id:
        d.picture_id &= 0x7F
    if d.picture_id is None:
        d.long_picture_id = True
    if d.tid is None:
        d.layer_sync = False
    return d


descriptors = st.builds(
    Vp8Descriptor,
    st.booleans(),
    st.integers(0, 7),
    st.booleans(),
    st.none() | st.integers(0, 0x7FFF),
    st.booleans(),
    st.none() | st.integers(0, 255),
    st.none() | st.integers(0, 3),
    st.booleans(),
    st.none() | st.integers(0, 31),
).map(_fix)


@given(descriptors, st.binary(max_size=20))
def test_vp8_descriptor_round_trip(d, data):
    wire = d.serialize() + data
    back, pos = Vp8Descriptor.parse(wire)
    assert back == d and wire[pos:] == data


@given(descriptors)
def test_vp8_descriptor_matches_aiortc(d):
    theirs, rest = vpx.VpxPayloadDescriptor.parse(d.serialize() + b"xy")
    assert rest == b"xy"
    assert (theirs.partition_start, theirs.partition_id) == (d.start_of_partition, d.partition_index)
    assert theirs.picture_id == d.picture_id and theirs.tl0picidx == d.tl0picidx
    assert theirs.keyidx == d.keyidx
    assert theirs.tid == ((d.tid, int(d.layer_sync)) if d.tid is not None else None)


@given(st.binary(max_size=12))
def test_vp8_arbitrary_bytes(data):
    try:
        Vp8Descriptor.parse(data)
    except RtpParseError:
        pass
    vp8_is_keyframe(data)  # never raises


@given(st.binary(min_size=1, max_size=5000), st.integers(20, 1300), st.integers(0, 0x7FFF))
def test_vp8_packetize_depacketize_and_aiortc(frame, mtu, picture_id):
    payloads = Vp8Packetizer(mtu, picture_id).packetize(frame)
    assert all(len(p) <= mtu for p in payloads)
    assert vp8_starts_frame(payloads[0]) and not any(vp8_starts_frame(p) for p in payloads[1:])
    assert vp8_depacketize(payloads) == frame
    # aiortc depacketizes ours ...
    assert b"".join(vpx.vp8_depayload(p) for p in payloads) == frame
    # ... and we depacketize aiortc's.
    assert vp8_depacketize(vpx.Vp8Encoder._packetize(frame, picture_id)) == frame


def test_vp8_keyframe_bit():
    key = Vp8Packetizer(100).packetize(b"\x10\x02\x00\x9d\x01\x2a" + bytes(10))
    delta = Vp8Packetizer(100).packetize(b"\x11\x02\x00" + bytes(10))
    assert vp8_is_keyframe(key[0]) and not vp8_is_keyframe(delta[0])
    with pytest.raises(RtpParseError):
        vp8_depacketize(key[1:] or [b"\x80\x80\x80\x01x"])


nal_units = st.builds(
    lambda t, nri, body: bytes(((nri << 5) | t,)) + body,
    st.sampled_from([1, 5, 6, 7, 8, 9]),
    st.integers(0, 3),
    st.binary(min_size=1, max_size=3000),
)


def _annexb(nals):
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals)


@given(st.lists(nal_units, min_size=1, max_size=8), st.integers(100, 1400))
def test_h264_packetize_depacketize_and_aiortc(nals, mtu):
    payloads = H264Packetizer(mtu).packetize(nals)
    assert all(len(p) <= mtu for p in payloads)
    assert h264_depacketize(payloads) == _annexb(nals)
    # aiortc's depayloader reads ours, packet by packet.
    assert b"".join(h264.h264_depayload(p) for p in payloads) == _annexb(nals)
    # Ours reads aiortc's packetizer output.
    assert h264_depacketize(h264.H264Encoder._packetize(iter(nals))) == _annexb(nals)


@given(st.lists(nal_units, min_size=1, max_size=5))
def test_h264_split_annexb_inverts_join(nals):
    # Bodies must not contain start codes for the split to be unambiguous.
    nals = [n.replace(b"\x00\x00", b"\x00\x03") for n in nals]
    nals = [n[:-1] + b"\x01" if n.endswith(b"\x00") else n for n in nals]
    assert split_annexb(_annexb(nals)) == nals
    assert split_annexb(b"\x00\x00\x01".join([b""] + nals)) == nals


def test_h264_structures_and_keyframes():
    sps, pps, idr = b"\x67" + bytes(5), b"\x68" + bytes(3), b"\x65" + bytes(3000)
    payloads = H264Packetizer(1200).packetize([sps, pps, idr])
    assert payloads[0][0] & 0x1F == STAP_A and h264_nal_types(payloads[0]) == [7, 8]
    assert all(p[0] & 0x1F == FU_A for p in payloads[1:]) and len(payloads) == 4
    assert h264_nal_types(payloads[1]) == [5] and h264_nal_types(payloads[2]) == []
    assert h264_is_keyframe(payloads[0]) and h264_is_keyframe(payloads[1])
    assert not h264_is_keyframe(payloads[2])
    assert h264_frame_is_keyframe(payloads)
    assert not h264_frame_is_keyframe(H264Packetizer().packetize([idr]))
    for bad in ([payloads[2]], [payloads[1]], [b"\x19abc"], [b"\x18\x00\x09x"], [b""]):
        with pytest.raises(RtpParseError):
            h264_depacketize(bad)


@given(st.lists(st.binary(max_size=30), max_size=4))
def test_h264_arbitrary_payloads(payloads):
    try:
        h264_depacketize(payloads)
    except RtpParseError:
        pass
    for p in payloads:
        h264_nal_types(p)


def test_opus_duration_and_audio_level():
    assert opus_duration(bytes([0xF8])) == 960  # config 31 (CELT FB 20 ms), code 0
    assert opus_duration(bytes([0x79])) == 1920  # config 15 (Hybrid FB 20 ms), 2 frames
    assert opus_duration(bytes([0x03, 0x03])) == 3 * 480  # SILK NB 10 ms x 3
    for bad in (b"", b"\x03", b"\x03\x00", bytes([0x1B, 3])):  # 3 x 60 ms > 120 ms
        with pytest.raises(RtpParseError):
            opus_duration(bad)
    m = HeaderExtensionMap({1: URI_AUDIO_LEVEL})
    p = opus_packet(
        b"\xf8\xff\xfe", payload_type=111, sequence_number=1, timestamp=960, ssrc=5,
        audio_level=AudioLevel(True, 30), extensions=m,
    )
    assert RtpPacket.parse(p.serialize()).payload == b"\xf8\xff\xfe"
    assert opus_audio_level(p, m) == AudioLevel(True, 30)
    assert opus_audio_level(opus_packet(b"\xf8", payload_type=111, sequence_number=1, timestamp=0, ssrc=5), m) is None


@given(st.binary(max_size=6))
def test_opus_duration_arbitrary_bytes(payload):
    try:
        assert 120 <= opus_duration(payload) <= 5760
    except RtpParseError:
        pass
