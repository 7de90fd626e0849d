"""Two media transports over real UDP sockets on 127.0.0.1 through the asyncio adapter."""

from __future__ import annotations

import asyncio
import time

from netcore.media.codecs import VideoEncoder
from netcore.media.synthetic import SyntheticCamera
from netcore.peer.aio import TransportConnection
from netcore.peer.events import CandidateGathered, TransportClosed
from netcore.peer.transport import MediaTransport, TransportState
from netcore.rtp.packet import RtpPacket
from tests.peer.harness import VIDEO_PT, VideoSink, transport_config

FRAMES = 30


async def call_over_loopback() -> tuple[list, list, list]:
    loop = asyncio.get_running_loop()
    offset = time.time() - loop.time()
    sink = VideoSink()
    events_a: list = []
    events_b: list = []

    def on_b(event):
        events_b.append(event)
        sink.on_event(event)
    a = TransportConnection(MediaTransport(transport_config("a", wallclock_offset=offset)), on_event=events_a.append)
    b = TransportConnection(MediaTransport(transport_config("b", wallclock_offset=offset)), on_event=on_b)
    try:
        await a.bind(["127.0.0.1"])
        await b.bind(["127.0.0.1"])
        a.start()
        b.start()
        for source, target in ((events_a, b), (events_b, a)):
            for event in [e for e in source if isinstance(e, CandidateGathered)]:
                target.call(target.transport.add_remote_candidate, event.candidate)
            target.call(target.transport.add_remote_candidate, None)
        await asyncio.gather(a.connected(5.0), b.connected(5.0))
        camera = SyntheticCamera(320, 240)
        encoder = VideoEncoder("VP8", target_bitrate=300_000, max_width=320, max_height=240)
        ssrc = a.transport.config.media[1].send_ssrc
        seq = 0
        for n in range(FRAMES):
            frame = encoder.encode(camera.frame(n))
            for i, payload in enumerate(frame.payloads):
                a.send_rtp(RtpPacket.build(payload_type=VIDEO_PT, sequence_number=seq, timestamp=frame.timestamp,
                                           ssrc=ssrc, payload=payload, marker=i == len(frame.payloads) - 1))
                seq += 1
            await asyncio.sleep(1 / 30)
        deadline = loop.time() + 5.0
        while len(sink.numbers) < FRAMES and loop.time() < deadline:
            await asyncio.sleep(0.02)
        assert a.transport.state is TransportState.CONNECTED
    finally:
        a.close()
        await asyncio.sleep(0.1)  # the BYE and close_notify reach B
        b.close()
    return sink.numbers, events_a, events_b


def test_media_over_loopback_udp_decodes_in_order():
    numbers, events_a, events_b = asyncio.run(asyncio.wait_for(call_over_loopback(), 30))
    assert numbers == list(range(FRAMES))
    closed = [e for e in events_b if isinstance(e, TransportClosed)]
    assert closed and closed[0].reason != "closed locally"  # B heard A's close_notify first
