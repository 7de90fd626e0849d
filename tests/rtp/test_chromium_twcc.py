"""Transport-wide feedback as Chromium writes it: stored captures and a live one.

``chromium_twcc.json`` holds feedback packets captured from Chromium (see
``tests/rtp/chromium_twcc.py``, which also regenerates the file) with the
arrivals they encode: ``(transport-wide sequence number, delta in 250 us
ticks or null for not received)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netcore.rtp.feedback import LARGE_DELTA, NOT_RECEIVED, SMALL_DELTA
from netcore.rtp.rtcp import TransportFeedback, parse_rtcp
from tests.rtp.chromium_twcc import capture, schedule

VECTORS = json.loads((Path(__file__).parent / "chromium_twcc.json").read_text())["feedback"]


def _ours(fb: TransportFeedback) -> bytes:
    """Our encoding of the same arrivals, header fields copied."""
    return TransportFeedback.from_arrivals(
        fb.sender_ssrc, fb.media_ssrc, fb.base_sequence, fb.reference_time, fb.fb_pkt_count,
        [delta for _, delta in fb.arrivals()],
    ).serialize()


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["hex"][24:32])
def test_chromium_feedback_parses_to_its_arrivals(vector):
    (fb,) = parse_rtcp(bytes.fromhex(vector["hex"]))
    assert [list(a) for a in fb.arrivals()] == vector["arrivals"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["hex"][24:32])
def test_we_encode_chromium_arrivals_to_chromium_bytes(vector):
    raw = bytes.fromhex(vector["hex"])
    (fb,) = parse_rtcp(raw)
    assert _ours(fb) == raw


def _chunk_list(raw: bytes, count: int) -> list[int]:
    """The packet status chunks of a feedback packet covering ``count`` statuses."""
    out, pos, seen = [], 20, 0  # after the RTCP header, SSRCs, base/count/reference/fb count
    while seen < count:
        chunk = int.from_bytes(raw[pos : pos + 2], "big")
        out.append(chunk)
        seen += chunk & 0x1FFF if not chunk & 0x8000 else 7 if chunk & 0x4000 else 14
        pos += 2
    return out


def _chunk_kinds(raw: bytes, count: int) -> set[str]:
    return {["run", "run", "one-bit", "two-bit"][c >> 14] for c in _chunk_list(raw, count)}


def test_captures_cover_every_symbol_and_chunk_kind():
    # The vectors are worth keeping only if they exercise each choice.
    symbols: set[int] = set()
    kinds: set[str] = set()
    for vector in VECTORS:
        raw = bytes.fromhex(vector["hex"])
        (fb,) = parse_rtcp(raw)
        symbols.update(fb.statuses)
        kinds |= _chunk_kinds(raw, len(fb.statuses))
    assert symbols == {NOT_RECEIVED, SMALL_DELTA, LARGE_DELTA}
    assert kinds == {"run", "one-bit", "two-bit"}


def _chunks(fb: TransportFeedback) -> str:
    raw = fb.serialize()
    return raw[20 : 20 + 2 * len(_chunk_list(raw, len(fb.statuses)))].hex()


def test_one_symbol_at_the_end_is_a_run_length_chunk():
    # libwebrtc writes a lone last symbol as a run of one, not a vector.
    assert _chunks(TransportFeedback.from_arrivals(1, 2, 10, 0, 0, [5])) == "2001"
    arrivals = [4] * 14 + [None]
    assert _chunks(TransportFeedback.from_arrivals(1, 2, 10, 0, 0, arrivals)) == "200e" "0001"


def test_chunks_follow_libwebrtc_pending_chunk_rules():
    # Worked by hand with libwebrtc's rules: 8 losses, small, loss, 2 large,
    # 15 small, loss, 9 large.  The pending chunk holds the 8 losses, the
    # small and the loss as one-bit symbols until the large delta: the first
    # 7 go out as a two-bit vector, the rest with the large ones and two
    # small ones as another; 14 symbols then fill a one-bit vector and the
    # 9 large ones a run.  Four chunks (the former encoder wrote five).
    arrivals = [None] * 8 + [1, None, 300, 300] + [1] * 15 + [None] + [300] * 9
    fb = TransportFeedback.from_arrivals(1, 2, 0, 0, 0, arrivals)
    assert _chunks(fb) == "c000" "c4a5" "bffe" "4009"
    assert parse_rtcp(fb.serialize()) == [fb]


async def test_live_chromium_feedback_reports_what_we_sent_and_we_write_it_alike(tmp_path):
    sends = schedule()
    feedback = await capture(tmp_path, sends)
    assert feedback, "Chromium sent no transport-wide feedback"
    sent = {s.seq for s in sends}
    received: set[int] = set()
    reported_lost: set[int] = set()
    for raw in feedback:
        (fb,) = parse_rtcp(raw)
        assert _ours(fb) == raw
        for seq, delta in fb.arrivals():
            if delta is None:
                reported_lost.add(seq)
            else:
                assert seq in sent
                received.add(seq)
    # Loopback through coturn loses nothing; a reordered number may be
    # reported lost before it arrives, and received later.
    assert received == sent
    assert set(range(min(sent), max(sent) + 1)) - sent <= reported_lost
