"""Key-frame detection for VP9 and AV1 (VP8 and H.264 are in test_payloads)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netcore.rtp.keyframes import KEYFRAME_DETECTORS, av1_is_keyframe, vp9_is_keyframe


def test_vp9_descriptor_bits():
    # RFC 9628 section 4.2: I P L F B E V Z
    assert vp9_is_keyframe(bytes([0b00001000]) + b"frame")  # B, not P
    assert not vp9_is_keyframe(bytes([0b01001000]) + b"frame")  # P: predicted
    assert not vp9_is_keyframe(bytes([0b00000100]) + b"frame")  # not the start
    # I with a 15-bit picture ID, L with SID 0 then SID 1 (TID U SID D).
    assert vp9_is_keyframe(bytes([0b10101000, 0x81, 0x23, 0b001_0_000_0, 7]))
    assert not vp9_is_keyframe(bytes([0b10101000, 0x81, 0x23, 0b001_0_001_0, 7]))
    # 7-bit picture ID.
    assert vp9_is_keyframe(bytes([0b10101000, 0x05, 0b000_1_000_0]))
    assert not vp9_is_keyframe(bytes([0b10101000, 0x81]))  # truncated


def test_av1_aggregation_header():
    # Z Y W(2) N - - -
    assert av1_is_keyframe(bytes([0b0001_1000]) + b"obu")  # N, W=1
    assert not av1_is_keyframe(bytes([0b1001_1000]) + b"obu")  # continuation
    assert not av1_is_keyframe(bytes([0b0001_0000]) + b"obu")


@given(st.binary(max_size=8))
def test_detectors_never_raise(payload):
    for detect in KEYFRAME_DETECTORS.values():
        assert detect(payload) in (True, False)
