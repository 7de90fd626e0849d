"""5 % random loss each way: NACK and RTX recover every video frame; the counters show it."""

from __future__ import annotations

from netcore.peer.events import RtcpReceived, RtpReceived
from netcore.rtp.feedback import Nack, TransportFeedback
from netcore.rtp.rtcp import ReceiverReport, Sdes, SenderReport
from tests.peer.harness import VideoSink, VideoSource, make_call

FRAMES = 90


def lossy_call(seed: int, **config):
    call = make_call(seed, config_a=config, config_b=config)
    call.connect()
    # Small packets at 600 kbit/s: several per frame, so losses hit inside frames too.
    source = VideoSource(call, "a", bitrate=600_000, max_payload_size=200)
    sink = VideoSink(call, "b")
    links = (call.net.link("198.51.100.1"), call.net.link("203.0.113.10"))
    previous = call.node_b.on_event

    def lossy_once_media_flows(event):
        previous(event)
        if isinstance(event, RtpReceived):  # from the first packet on: the receiver knows the stream
            for link in links:
                link.loss = 0.05
    call.node_b.on_event = lossy_once_media_flows
    # Ten more frames than checked: a loss in the last packets shows only when later ones arrive.
    source.start(FRAMES + 10)
    call.run(FRAMES / 30 + 3.0, stop=lambda: len(sink.numbers) >= FRAMES)
    return call, source, sink


def test_nack_and_rtx_recover_every_frame_under_loss():
    call, source, sink = lossy_call(7)
    assert sink.numbers[:FRAMES] == list(range(FRAMES))
    a, b = call.a.stats, call.b.stats
    assert call.net.dropped > 0
    assert b.nacks_sent > 0 and a.nacks_received > 0
    assert call.a.sender.retransmissions > 0 and b.rtx_received > 0
    assert sink.retransmitted == b.rtx_received  # every repair came over the RTX stream
    assert call.b.receiver.recovered > 0
    print(f"dropped {call.net.dropped}, NACKed {b.nacks_sent}, retransmitted {call.a.sender.retransmissions}, "
          f"RTX received {b.rtx_received}, recovered {call.b.receiver.recovered}, at {call.net.now:.2f} s")


def test_without_rtx_nack_is_answered_with_the_original_packets():
    call, source, sink = lossy_call(8, rtx=False)
    assert sink.numbers[:FRAMES] == list(range(FRAMES))
    assert call.b.stats.nacks_sent > 0 and call.a.sender.retransmissions > 0
    assert call.b.stats.rtx_received == 0
    assert call.b.receiver.recovered > 0


def test_reduced_size_rtcp_carries_feedback_alone():
    call, source, sink = lossy_call(9, rsize=True)
    assert sink.numbers[:FRAMES] == list(range(FRAMES))
    assert call.b.stats.nacks_sent > 0 and call.a.stats.rtcp_parse_errors == 0
    compounds = [e.packets for e in call.events("a", RtcpReceived)]
    alone = [p for p in compounds if all(isinstance(x, (Nack, TransportFeedback)) for x in p)]
    assert any(isinstance(p[0], Nack) for p in alone)  # RFC 5506: no report in front
    assert any(isinstance(p[0], (SenderReport, ReceiverReport)) for p in compounds)  # regular reports still go


def test_without_reduced_size_feedback_rides_in_compounds():
    call, source, sink = lossy_call(9)
    compounds = [e.packets for e in call.events("a", RtcpReceived)]
    with_nack = [p for p in compounds if any(isinstance(x, Nack) for x in p)]
    assert with_nack and all(isinstance(p[0], (SenderReport, ReceiverReport)) and isinstance(p[1], Sdes)
                             for p in with_nack)


def nacked_at_a(call) -> list[tuple[int, ...]]:
    """The sequence number lists of the NACKs the sender received, in arrival order."""
    return [tuple(x.lost) for e in call.events("a", RtcpReceived) for x in e.packets if isinstance(x, Nack)]


def test_each_nack_goes_out_in_two_datagrams_and_is_answered_once():
    # A lost NACK costs a round trip plus the jitter before the number is asked for again.
    call, source, sink = lossy_call(7)
    b = call.b.stats
    assert b.nacks_sent > 0 and b.nack_copies_sent > 0
    lists = nacked_at_a(call)
    assert len(lists) > len(set(lists))  # both copies of some NACK came through
    assert call.a.stats.nacks_received > b.nacks_sent
    # Every NACK's numbers were answered at most once per copy pair: the sender's repairs are not doubled by it.
    assert call.a.sender.retransmissions <= b.nacks_sent


def test_one_nack_copy_when_configured():
    call, source, sink = lossy_call(7, nack_copies=1)
    assert call.b.stats.nacks_sent > 0 and call.b.stats.nack_copies_sent == 0
    assert call.a.stats.nacks_received <= call.b.stats.nacks_sent
