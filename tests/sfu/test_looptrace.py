"""bench/sfu_looptrace.py's reading of the daemon's records: kinds, windows, what a publisher packet waited behind."""

from __future__ import annotations

from bench.sfu_looptrace import _kind, batch_waits, windows
from netcore.rtp.packet import RtpPacket


def test_datagrams_are_told_apart_by_their_first_bytes():
    """RFC 7983 for STUN and DTLS, RFC 5761 for RTCP (packet types 192-223) against RTP."""
    rtp = RtpPacket.build(payload_type=96, sequence_number=1, timestamp=0, ssrc=1, payload=b"x").data
    marked = RtpPacket.build(payload_type=96, sequence_number=1, timestamp=0, ssrc=1, payload=b"x", marker=True).data
    assert [_kind(d) for d in (b"\x00\x01", b"\x16\xfe\xfd", rtp, marked, b"\x81\xcd\x00\x04", b"\x80\xc8")] == [
        "stun", "dtls", "rtp", "rtp", "rtcp", "rtcp"]


def test_a_window_is_what_lies_between_two_reads_of_the_metrics():
    records = [(0.0, 0.1, "rtp", [0, 0, 0, 0]), (1.0, 1.1, "metrics", 0), (1.2, 1.3, "rtp", [0, 0, 0, 0]),
               (1.4, 1.5, "timer", [1, 0, 0, 0]), (2.0, 2.1, "metrics", 0), (2.2, 2.3, "rtcp", [0, 0, 0, 0]),
               (3.0, 3.1, "metrics", 0), (4.0, 4.1, "metrics", 0)]
    assert [[r[2] for r in w] for w in windows(records)] == [["rtp", "timer"], []]


def test_a_publisher_packet_is_charged_the_other_datagrams_of_its_batch_only():
    """RTCP handled just before it in the same batch counts; after a gap, or across a timer, it does not."""
    us = 1e-6
    window = [(0, 100 * us, "rtcp", [56, 90 * us]), (105 * us, 200 * us, "rtcp", [56, 80 * us]),
              (205 * us, 300 * us, "rtp", [1190, 90 * us, 0, 0]),
              (1000 * us, 1100 * us, "rtcp", [56, 95 * us]), (2000 * us, 2100 * us, "rtp", [1190, 90 * us, 0, 0]),
              (2105 * us, 2200 * us, "rtcp", [56, 90 * us]), (2205 * us, 2300 * us, "timer", [1, 90 * us]),
              (2305 * us, 2400 * us, "rtp", [1190, 90 * us, 0, 0])]
    assert [round(w / us) for w in batch_waits(window)] == [170, 0, 0]
