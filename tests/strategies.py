"""Hypothesis strategies for the fixed-width fields of wire formats, shared by the layers' tests."""

from hypothesis import strategies as st

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def rtp_fields(draw, *, max_payload: int = 64, max_csrcs: int = 15) -> dict:
    """A random RTP packet's fixed header fields, CSRCs and payload (RFC 3550 section 5.1), by name."""
    return dict(
        payload_type=draw(st.integers(0, 127)),
        sequence_number=draw(u16),
        timestamp=draw(u32),
        ssrc=draw(u32),
        payload=draw(st.binary(max_size=max_payload)),
        marker=draw(st.booleans()),
        csrcs=draw(st.lists(u32, max_size=max_csrcs)),
    )
