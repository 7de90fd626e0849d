"""Hypothesis strategies for the fixed-width fields of wire formats, shared by the layers' tests."""

from hypothesis import strategies as st

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
