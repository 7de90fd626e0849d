"""RTP/RTCP codec throughput: netcore.rtp against aiortc.rtp, in one run.

Cases:
  parse         RTP packet (1200-byte payload) with two header extensions
                (mid, transport-wide sequence number); ours parses lazily, so
                a second line also reads both extension values
  rewrite       forwarding rewrite of SSRC, sequence number, timestamp and PT:
                ours on the raw bytes; aiortc parse + set fields + serialize;
                a second line parses and maps through a StreamRewriter
  rtcp          compound RTCP: SR with 2 report blocks + SDES CNAME + REMB

Usage: python3 bench/rtp_codec.py [seconds per case and side, default 1.5;
the best of three runs is printed]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiortc import rtp as A  # noqa: E402
from aiortc.rtcrtpparameters import (  # noqa: E402
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
)

from netcore.rtp.extensions import URI_MID, URI_TRANSPORT_CC, HeaderExtensionMap  # noqa: E402
from netcore.rtp.forward import StreamRewriter  # noqa: E402
from netcore.rtp.packet import RtpPacket, rewrite_header  # noqa: E402
from netcore.rtp import rtcp  # noqa: E402


def rate(fn, seconds: float, repeats: int = 3) -> float:
    """Calls per second of ``fn`` (which runs 100 iterations per call): the
    best of ``repeats`` runs, since the machine is shared with other work."""
    best = 0.0
    for _ in range(repeats):
        n = 0
        start = time.perf_counter()
        deadline = start + seconds / repeats
        while True:
            fn()
            n += 100
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n / (now - start))
    return best


def loop(f, *args):
    def run():
        for _ in range(100):
            f(*args)

    return run


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.5
    ids = {1: URI_MID, 3: URI_TRANSPORT_CC}
    ours_map = HeaderExtensionMap(ids)
    their_map = A.HeaderExtensionsMap()
    their_map.configure(
        RTCRtpParameters(
            headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=u) for i, u in ids.items()]
        )
    )
    data = RtpPacket.build(
        payload_type=96, sequence_number=1234, timestamp=567890, ssrc=0x11223344,
        payload=bytes(1200), marker=True,
        extensions=ours_map.encode({URI_MID: "0", URI_TRANSPORT_CC: 42}),
    ).serialize()
    assert A.RtpPacket.parse(data, their_map).extensions.transport_sequence_number == 42

    def ours_parse_ext():
        for _ in range(100):
            p = RtpPacket.parse(data)
            ours_map.value(p, URI_MID), ours_map.value(p, URI_TRANSPORT_CC)

    def theirs_rewrite():
        for _ in range(100):
            p = A.RtpPacket.parse(data, their_map)
            p.ssrc, p.sequence_number, p.timestamp, p.payload_type = 1, 2, 3, 97
            p.serialize(their_map)

    rewriter = StreamRewriter(ssrc=1, clock_rate=90000, payload_types={96: 97})
    rewriter.select(0x11223344)

    def forward_ours():
        for _ in range(100):
            rewriter.rewrite(RtpPacket.parse(data), 0.0)

    compound = rtcp.serialize_rtcp(
        [
            rtcp.SenderReport(1, 2**60, 3, 4, 5, [rtcp.ReportBlock(6, 1, 2, 3, 4, 5, 6), rtcp.ReportBlock(7)]),
            rtcp.Sdes([rtcp.SdesChunk(1, [(1, b"abcdefghijklmnop")])]),
            rtcp.Remb(1, 1_500_000, [6, 7]),
        ]
    )
    assert len(A.RtcpPacket.parse(compound)) == 3

    cases = [
        ("RTP parse, 2 extensions", loop(RtpPacket.parse, data), loop(A.RtpPacket.parse, data, their_map)),
        ("RTP parse + read both extensions", ours_parse_ext, loop(A.RtpPacket.parse, data, their_map)),
        ("RTP header rewrite (forwarding)", loop(rewrite_header, data, 1, 2, 3, 97), theirs_rewrite),
        ("RTP parse + StreamRewriter.rewrite", forward_ours, theirs_rewrite),
        ("RTCP compound parse (SR+SDES+REMB)", loop(rtcp.parse_rtcp, compound), loop(A.RtcpPacket.parse, compound)),
    ]
    print(f"{'case':38} {'netcore pkt/s':>14} {'aiortc pkt/s':>14} {'ratio':>7}")
    for name, ours, theirs in cases:
        r_ours = rate(ours, seconds)
        r_theirs = rate(theirs, seconds)
        print(f"{name:38} {r_ours:14,.0f} {r_theirs:14,.0f} {r_ours / r_theirs:6.1f}x")


if __name__ == "__main__":
    main()
