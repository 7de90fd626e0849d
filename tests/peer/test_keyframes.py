"""A PLI or FIR from the receiver makes the sender's next encoded frame a key frame."""

from __future__ import annotations

from netcore.peer.events import KeyFrameRequested
from netcore.rtp.vp8 import vp8_is_keyframe
from tests.peer.harness import VideoSink, VideoSource, make_call


def ask_for_keyframe(fir: bool):
    call = make_call()
    call.connect()
    source = VideoSource(call, "a")
    sink = VideoSink(call, "b")
    received_keys = []
    asked_at: list[int] = []
    previous_a, previous_b = call.node_a.on_event, call.node_b.on_event

    def on_a(event):
        previous_a(event)
        if isinstance(event, KeyFrameRequested):
            assert event.ssrc == source.ssrc
            asked_at.append(len(source.sent))  # the next frame sent is this number
            source.encoder.request_keyframe()

    def on_b(event):
        previous_b(event)
        if getattr(event, "mid", None) == "1" and vp8_is_keyframe(event.packet.payload):
            received_keys.append(event.packet.timestamp // 3000)
    call.node_a.on_event, call.node_b.on_event = on_a, on_b
    source.start(40)
    call.run(0.7)  # frames 0-20 out: only the first was a key frame
    assert source.keyframes == [0]
    call.b.request_keyframe(source.ssrc, call.net.now, fir=fir)
    call.node_b.flush()
    call.run(1.0)
    return call, source, sink, asked_at, received_keys


def test_pli_makes_the_next_frame_a_key_frame():
    call, source, sink, asked_at, received_keys = ask_for_keyframe(fir=False)
    assert len(asked_at) == 1 and call.a.stats.plis_received == 1 and call.b.stats.plis_sent == 1
    assert source.keyframes == [0, asked_at[0]]
    assert sorted(set(received_keys)) == [0, asked_at[0]]
    assert sink.numbers == list(range(40))


def test_fir_makes_the_next_frame_a_key_frame_once():
    call, source, sink, asked_at, received_keys = ask_for_keyframe(fir=True)
    assert call.a.stats.firs_received == 1 and source.keyframes == [0, asked_at[0]]
    assert sink.numbers == list(range(40))
