"""Two media transports on the simulated network, in virtual time: connect, then real media both ways."""

from __future__ import annotations

from netcore.peer.events import BitrateChanged, PathChanged, TransportConnected
from netcore.peer.transport import TransportState
from tests.peer.harness import AudioSink, AudioSource, VideoSink, VideoSource, make_call


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
