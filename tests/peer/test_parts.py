"""The transport's parts alone: demultiplexing rules, the send path's limits, the RTCP interval."""

from __future__ import annotations

import dataclasses

from netcore.cc import BandwidthEstimator
from netcore.peer.config import CodecConfig, MediaConfig
from netcore.peer.demux import MAX_SSRCS, RtpDemuxer
from netcore.peer.receiver import Receiver
from netcore.peer.rtcp import RtcpTimer
from netcore.peer.sender import RepairShare, Sender
from netcore.rtp.packet import RtpPacket
from netcore.rtp.rtx import unwrap_rtx, wrap_rtx
from netcore.testing.nodes import counter_random
from tests.peer.harness import transport_config

AUDIO = MediaConfig("a", "audio", (CodecConfig(111, "opus", 48000),))
VIDEO = MediaConfig("v", "video", (CodecConfig(96, "VP8", 90000, 97),))
VIDEO2 = MediaConfig("w", "video", (CodecConfig(96, "VP8", 90000, 97), CodecConfig(100, "H264", 90000)))


def packet(ssrc: int, pt: int, mid: str | None = None, seq: int = 1) -> RtpPacket:
    extensions = [(1, mid.encode())] if mid is not None else []
    return RtpPacket.build(payload_type=pt, sequence_number=seq, timestamp=0, ssrc=ssrc, payload=b"x",
                           extensions=extensions)


def test_mid_binds_an_unknown_ssrc_and_rtx_pairs_with_the_media_ssrc_learnt():
    demux = RtpDemuxer((AUDIO, VIDEO, VIDEO2), mid_extension=1)
    assert demux.route(packet(5, 96, "w")).media is VIDEO2
    assert demux.route(packet(5, 96)).media is VIDEO2  # bound: no MID needed any more
    rtx = demux.route(packet(6, 97, "w"))
    assert rtx.rtx and rtx.media_ssrc == 5 and rtx.media is VIDEO2
    assert demux.route(packet(7, 111, "a")).media is AUDIO


def test_a_new_mid_moves_the_ssrc_and_an_unknown_one_does_not():
    demux = RtpDemuxer((AUDIO, VIDEO, VIDEO2), mid_extension=1)
    demux.route(packet(5, 96, "v"))
    assert demux.route(packet(5, 96, "w")).media is VIDEO2  # RFC 8843 section 9.2
    assert demux.route(packet(5, 96, "nope")).media is VIDEO2
    assert demux.unroutable == 1


def test_without_mid_a_payload_type_unique_to_one_section_binds():
    demux = RtpDemuxer((AUDIO, VIDEO, VIDEO2), mid_extension=None)
    assert demux.route(packet(8, 111)).media is AUDIO
    assert demux.route(packet(9, 100)).media is VIDEO2
    assert demux.route(packet(10, 96)) is None  # shared by two sections
    assert demux.unroutable == 1


def test_signalled_ssrcs_and_fid_groups_route_before_any_packet():
    video = MediaConfig("v", "video", VIDEO.codecs, remote_rtx_ssrcs=((40, 41),))
    demux = RtpDemuxer((AUDIO, video), mid_extension=None)
    route = demux.route(packet(41, 97))
    assert route.rtx and route.media_ssrc == 40
    original = packet(40, 96, seq=77)
    rtx = wrap_rtx(original, 97, 3, 41)
    assert unwrap_rtx(rtx, 96, route.media_ssrc).payload == original.payload


def test_a_signalled_ssrc_that_carries_rtx_is_the_rtx_stream_without_its_fid_group():
    """A peer's description lists both SSRCs in a=ssrc lines; negotiation hands over the list
    without the FID group: the SSRC that sends the RTX payload type repairs the other one."""
    video = MediaConfig("v", "video", VIDEO.codecs, remote_ssrcs=(40, 41))
    demux = RtpDemuxer((AUDIO, video), mid_extension=1)
    assert not demux.route(packet(40, 96, "v")).rtx
    route = demux.route(packet(41, 97, "v"))
    assert route.rtx and route.media_ssrc == 40
    padding = RtpPacket.build(payload_type=97, sequence_number=2, timestamp=0, ssrc=41, padding=255)
    assert demux.route(padding).rtx and demux.unroutable == 0


def rid_packet(ssrc: int, pt: int, mid: str | None, rid: str | None = None, rrid: str | None = None,
               seq: int = 1, padding: int = 0) -> RtpPacket:
    extensions = [(1, mid.encode())] if mid is not None else []
    extensions += [(2, rid.encode())] if rid is not None else []
    extensions += [(3, rrid.encode())] if rrid is not None else []
    return RtpPacket.build(payload_type=pt, sequence_number=seq, timestamp=0, ssrc=ssrc,
                           payload=b"" if padding else b"x", extensions=extensions, padding=padding)


def test_simulcast_streams_without_signalled_ssrcs_bind_by_rid_and_rtx_by_repaired_rid():
    """As browsers send simulcast (RFC 8853, no a=ssrc): RID on the first packets of each layer,
    repaired RID on its RTX; padding on an RTX SSRC first names no stream, the next packet does."""
    video = MediaConfig("v", "video", VIDEO.codecs, rids=("q", "h", "f"))
    demux = RtpDemuxer((AUDIO, video), mid_extension=1, rid_extension=2, rrid_extension=3)
    for ssrc, rid in ((10, "q"), (20, "h"), (30, "f")):
        route = demux.route(rid_packet(ssrc, 96, "v", rid))
        assert route.media is video and route.rid == rid and not route.rtx
    assert demux.route(rid_packet(20, 96, None)).rid == "h"  # bound: nothing needed any more
    rtx = demux.route(rid_packet(21, 97, "v", rrid="h"))
    assert rtx.rtx and rtx.media_ssrc == 20 and rtx.rid == "h"
    padding = demux.route(rid_packet(31, 97, "v", padding=255))
    assert padding.rtx and padding.media_ssrc is None  # three media SSRCs: which one is not known yet
    assert demux.route(rid_packet(31, 97, "v", rrid="f", seq=2)).media_ssrc == 30
    assert demux.route(rid_packet(40, 96, "v", "x")) is None  # a RID the section did not negotiate
    assert demux.unroutable == 1


def test_the_number_of_bound_ssrcs_is_bounded():
    demux = RtpDemuxer((AUDIO,), mid_extension=1)
    for ssrc in range(MAX_SSRCS + 10):
        demux.route(packet(1000 + ssrc, 111, "a"))
    assert len(demux.routes) == MAX_SSRCS and demux.unroutable == 10


def sender(target: float = 300_000) -> tuple[Sender, BandwidthEstimator]:
    config = transport_config("a")
    estimator = BandwidthEstimator(initial=target)
    return Sender(config, estimator), estimator


def test_send_stamps_mid_and_consecutive_transport_wide_numbers():
    s, _ = sender()
    for seq in range(3):
        s.send(packet(102, 96, seq=seq), 0.0)
    sent = [RtpPacket.parse(d) for d in s.out]
    assert [p.extension(1) for p in sent] == [b"1"] * 3
    numbers = [int.from_bytes(p.extension(3), "big") for p in sent]
    assert numbers == [(numbers[0] + i) & 0xFFFF for i in range(3)]


def test_a_packet_is_retransmitted_once_per_round_trip():
    s, _ = sender()
    s.send(packet(102, 96, seq=9), 0.0)
    s.rtt_measured(0.2)
    assert s.retransmit(102, [9], 0.05) == 1
    assert s.retransmit(102, [9], 0.15) == 0  # the first repair is still in flight
    assert s.retransmit(102, [9], 0.30) == 1
    repair = RtpPacket.parse(s.out[-1])
    assert repair.ssrc == 103 and repair.payload_type == 97  # RTX (RFC 4588)
    assert unwrap_rtx(repair, 96, 102).sequence_number == 9


def test_repairs_are_spaced_by_the_shortest_recent_round_trip():
    # On a jittery path the samples swing (50 to 110 ms here): a NACK one shortest round trip after
    # the repair may be for a repair that was lost, and waiting for the latest sample cost a round.
    s, _ = sender()
    s.send(packet(102, 96, seq=9), 0.0)
    for rtt in (0.05, 0.11, 0.08, 0.11):
        s.rtt_measured(rtt)
    assert s.retransmit(102, [9], 1.0) == 1
    assert s.retransmit(102, [9], 1.04) == 0  # sooner than any round trip: the repair is in flight
    assert s.retransmit(102, [9], 1.06) == 1


def test_a_repair_refused_by_the_budget_is_sent_for_a_later_nack():
    s, _ = sender(target=100_000)  # 3,125 bytes a second for repairs
    big = bytes(1000)
    for seq in range(4):
        s.send(RtpPacket.build(payload_type=96, sequence_number=seq, timestamp=0, ssrc=102, payload=big), 0.0)
    s.rtt_measured(1.5)
    assert s.retransmit(102, [0, 1, 2, 3], 0.5) == 3  # the fourth refused: not in flight
    assert s.retransmit(102, [3], 1.55) == 1  # the budget is back, within a round trip of the refusal


def sender_with_repairs(nacked: list[int], size: int = 0, target: float = 300_000) -> Sender:
    """A sender that sent packets 0-199 of SSRC 102 over 2 s (one each 10 ms, ``size`` payload bytes) and
    repaired each number in ``nacked`` 50 ms after sending it."""
    s, _ = sender(target)
    nacks = {seq + 5: seq for seq in nacked}
    for step in range(200):
        s.send(RtpPacket.build(payload_type=96, sequence_number=step, timestamp=0, ssrc=102, payload=bytes(size)),
               step * 0.01)
        if step in nacks:
            assert s.retransmit(102, [nacks[step]], step * 0.01) == 1
    s.release(2.5)
    s.out.clear()
    return s


def repairs_out(s: Sender) -> list[RtpPacket]:
    """The RTX packets the sender put out."""
    return [p for p in map(RtpPacket.parse, s.out) if p.ssrc == 103]


def test_on_a_lossy_path_each_repair_goes_out_twice():
    # 10 of 200 repaired: a lone repair is lost as often, and the frame then waits a NACK round more.
    s = sender_with_repairs(list(range(10, 200, 20)))
    assert s.repair_copies_sent == 5  # once the first window had closed, at 1.15 s
    assert s.retransmit(102, [7, 8], 2.5) == 2
    repairs = repairs_out(s)
    assert sorted(unwrap_rtx(p, 96, 102).sequence_number for p in repairs) == [7, 7, 8, 8]
    assert s.repair_copies_sent == 7
    assert len({p.sequence_number for p in repairs}) == 4  # each copy its own RTX number
    assert s.retransmit(102, [7], 2.51) == 0  # a NACK's other copies are not answered again


def test_a_transport_without_repair_copies_sends_each_repair_once_however_lossy():
    # The call server's transports: copies would come out of the next NACK's budget, and cost its CPU.
    s = sender_with_repairs(list(range(10, 200, 20)))
    s.config = dataclasses.replace(s.config, repair_copies=False)
    assert s.retransmit(102, [7, 8], 2.5) == 2
    assert len(repairs_out(s)) == 2 and s.repair_copies_sent == 5  # the five before, none now


def test_on_a_clean_path_a_repair_goes_out_once():
    s = sender_with_repairs([10, 150])  # 1 of 140 in the window that closes at 2.5 s
    assert s.retransmit(102, [7, 8], 2.5) == 2
    assert len(repairs_out(s)) == 2 and s.repair_copies_sent == 0


def test_second_copies_come_from_what_the_budget_leaves_after_every_first_copy():
    # 140 kbit/s: 4,375 bytes a second for repairs, four of these; the earlier repairs are a second old.
    s = sender_with_repairs([10, 50, 90, 130, 170], size=1000, target=140_000)
    copies = s.repair_copies_sent
    assert s.retransmit(102, [1, 2, 3], 2.8) == 3  # three first copies, then room for one second copy
    assert s.repair_copies_sent == copies + 1 and s.retransmissions_refused == 0
    for step in range(1, 20):  # the pacer lets them out at the target's rate
        s.release(2.8 + step * 0.05)
    assert [unwrap_rtx(p, 96, 102).sequence_number for p in repairs_out(s)] == [1, 2, 3, 1]


def test_the_repaired_share_is_read_over_whole_windows_and_reads_low_after_a_clean_spell():
    share = RepairShare()
    assert share.repaired(0.0, 0) == 0.0  # opens the window
    assert share.repaired(0.5, 50) == 0.0
    assert share.repaired(1.0, 100) == 0.02  # two of the window's 100 packets
    assert share.repaired(11.0, 1000) == 1 / 900  # ten clean seconds, then one


def test_retransmissions_stay_within_a_quarter_of_the_target_per_second():
    s, _ = sender(target=100_000)  # 3,125 bytes a second for repairs
    big = bytes(1000)
    for seq in range(10):
        s.send(RtpPacket.build(payload_type=96, sequence_number=seq, timestamp=0, ssrc=102, payload=big), 0.0)
    assert s.retransmit(102, list(range(10)), 0.5) == 3
    assert s.retransmissions_refused == 7
    assert s.retransmit(102, [5, 6, 7], 1.6) == 3  # a second later the budget is back


def test_rtcp_interval_follows_rfc_3550_with_the_reduced_minimum():
    timer = RtcpTimer(counter_random(3))
    intervals = [timer.interval(1_000_000, 2, 1, True) for _ in range(200)]
    # 360 / 1000 kbit/s = 0.36 s, halved before the first report, x [0.5, 1.5] / (e - 1.5)
    assert min(intervals) >= 0.18 * 0.5 / 1.2183 - 1e-9 and max(intervals) <= 0.18 * 1.5 / 1.2183 + 1e-9
    timer.initial = False
    slow = [timer.interval(50_000, 2, 1, True) for _ in range(200)]  # 360/50 = 7.2 s, capped at 5 s
    assert max(slow) <= 5 * 1.5 / 1.2183 + 1e-9 and min(slow) >= 5 * 0.5 / 1.2183 - 1e-9


def test_a_floor_under_the_reduced_minimum_spaces_reports_at_high_rates():
    """A call server's transports (netcore.sfu.core.RTCP_MIN_INTERVAL): 360 / 10,000 kbit/s would be 36 ms."""
    timer = RtcpTimer(counter_random(4), min_interval=1.0)
    timer.initial = False
    fast = [timer.interval(10_000_000, 2, 1, True) for _ in range(200)]
    assert min(fast) >= 1.0 * 0.5 / 1.2183 - 1e-9 and max(fast) <= 1.0 * 1.5 / 1.2183 + 1e-9
    slow = [timer.interval(50_000, 2, 1, True) for _ in range(200)]  # the 5 s cap still rules above the floor
    assert min(slow) >= 5 * 0.5 / 1.2183 - 1e-9


def test_nacks_stop_for_what_the_jitter_buffer_played_or_skipped_past():
    receiver = Receiver(rtcp_ssrc=1, rtt=0.05)
    receiver.packet(VIDEO, packet(5, 96, seq=65534), 0.0, False)
    receiver.packet(VIDEO, packet(5, 96, seq=3), 0.01, False)  # 65535 to 2 missing, across the wrap
    assert receiver.poll_nacks(0.02) == [(5, [65535, 0, 1, 2])]
    receiver.forget_through(5, 0)  # the frames up to 0 were skipped: no use asking for them again
    assert receiver.poll_nacks(1.0) == [(5, [1, 2])]
    receiver.forget_through(7, 2)  # an SSRC it does not know: nothing
