"""Two media transports on the simulated network, in virtual time: connect, then real media both ways."""

from __future__ import annotations

from netcore.peer.events import BitrateChanged, PathChanged, TransportConnected
from netcore.peer.transport import TransportState
from netcore.rtp.feedback import Remb
from netcore.peer.events import RtcpReceived, RtpReceived
from netcore.rtp.packet import RtpPacket
from netcore.rtp.rtcp import ReceiverReport, Sdes, SenderReport, serialize_rtcp
from tests.peer.harness import A_IP, AudioSink, AudioSource, VideoSink, VideoSource, make_call


def test_ice_dtls_srtp_connect_in_virtual_time():
    call = make_call()
    call.connect(until=5.0)
    assert call.a.state is TransportState.CONNECTED and call.b.state is TransportState.CONNECTED
    connected = call.events("a", TransportConnected)[0]
    assert connected.peer_fingerprint == call.b.local_fingerprint
    assert call.events("b", TransportConnected)[0].peer_fingerprint == call.a.local_fingerprint
    sends = [e for e in call.events("a", PathChanged) if e.direction.value == "send"]
    assert sends and not sends[0].relayed
    print(f"connected at A {call.connected_at['a']:.3f} s, B {call.connected_at['b']:.3f} s (virtual)")


def test_vp8_frames_arrive_decoded_in_order():
    call = make_call()
    call.connect()
    source = VideoSource(call, "a")
    sink = VideoSink(call, "b")
    source.start(60)
    call.run(4.0)
    assert source.sent == list(range(60))
    assert sink.numbers == list(range(60))
    assert call.b.stats.rtp_received >= 60


def test_opus_audio_arrives_in_order_and_decodes():
    call = make_call()
    call.connect()
    source = AudioSource(call, "b")
    sink = AudioSink(call, "a")
    source.start(100)
    call.run(3.0)
    assert sink.payloads == source.payloads and len(sink.payloads) >= 95
    assert sink.sequence_numbers == sorted(sink.sequence_numbers)
    assert sink.samples >= 960 * 95


def test_ice_lite_server_transport_as_the_call_server_runs_it():
    call = make_call(config_b={"lite": True})
    call.connect(until=5.0)
    assert call.b.ice.lite and call.b.ice.checks_sent == 0
    source = VideoSource(call, "a")
    sink = VideoSink(call, "b")
    source.start(20)
    call.run(1.5)
    assert sink.numbers == list(range(20))
    receive = [e for e in call.events("b", PathChanged) if e.direction.value == "receive"]
    assert receive and receive[0].remote == (A_IP, 5000)


def test_a_remb_caps_the_target():
    call = make_call()
    call.connect()
    source = VideoSource(call, "a")
    source.start(30)
    call.run(1.5)
    assert call.a.target_bitrate > 500_000  # the start probes found room
    remb = serialize_rtcp([ReceiverReport(call.b.rtcp_ssrc, []), Remb(call.b.rtcp_ssrc, 200_000, [102])])
    call.b.ice.send(call.b.srtp.protect_rtcp(remb), call.net.now)
    call.node_b.flush()
    call.run(0.2)
    assert call.a.stats.remb_received == 1 and call.a.target_bitrate <= 200_000
    assert [e.target for e in call.events("a", BitrateChanged)][-1] <= 200_000


def test_rtt_from_reports_reaches_the_estimator_and_nack_timing():
    call = make_call()
    call.connect()
    VideoSource(call, "a").start(60)
    AudioSource(call, "a").start(100)
    AudioSource(call, "b").start(100)
    call.run(2.5)
    rtt = call.a._rtt()
    assert rtt is not None and 0.035 < rtt < 0.08  # 2 x 20 ms of links, plus pacing
    assert call.b.stats.rtcp_sent > 0 and call.a.stats.rtcp_sent > 0
    assert abs(call.b.receiver.rtt - call.b._rtt()) < 1e-9
    compounds = [e.packets for e in call.events("b", RtcpReceived)]
    reports = [p for c in compounds for p in c if isinstance(p, SenderReport)]
    assert {r.ssrc for r in reports} == {101, 102}  # an SR for each SSRC A sends
    cnames = {chunk.cname for c in compounds for p in c if isinstance(p, Sdes) for chunk in p.chunks}
    assert cnames == {b"cname-a"}
    blocks = [b for c in call.events("a", RtcpReceived) for p in c.packets
              if isinstance(p, (SenderReport, ReceiverReport)) for b in p.reports]
    assert {b.ssrc for b in blocks} >= {102}  # B reports on what it receives from A


def test_a_payload_type_not_agreed_is_dropped_and_counted():
    call = make_call()
    call.connect()
    received = []
    call.node_a.on_event = lambda e: received.append(e.packet.payload_type) if isinstance(e, RtpReceived) else None
    for seq, pt in enumerate((111, 50, 111)):  # 50 is not an agreed payload type of mid "0"
        call.b.send_rtp(RtpPacket.build(payload_type=pt, sequence_number=seq, timestamp=0, ssrc=201,
                                        payload=b"\xfc\xff\xfe"), call.net.now)
    call.node_b.flush()
    call.run(0.5)
    assert received == [111, 111] and call.a.stats.unroutable == 1
