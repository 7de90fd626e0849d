"""VP8 temporal layers through real netcore-signal and netcore-sfu processes, our PeerConnections on both ends.

The publisher sends one L1T3 stream (no simulcast: ``scalability_mode``
alone), 320x240 at 20 frames/s with noise, so its encoder spends its whole
target, which the call server's REMB caps at ``--max-bitrate`` 800 kbit/s
(TL0 40 %, TL0+TL1 60 %); two subscribers receive it. The estimates towards
the subscribers may climb above that cap (``--max-subscriber-bitrate``), so the
unshaped one has the allocator's margin over the whole stream. One reaches the
server through a UDP relay whose server-to-client direction crosses a
420 kbit/s bottleneck: it is sent fewer TIDs (every second or fourth frame
the publisher encoded, each one decoded to the right picture) while the
other gets every frame; when the limit is lifted it gets every frame again.
"""

from __future__ import annotations

import asyncio

import pytest

from netcore.media.synthetic import SyntheticCamera
from netcore.peer.connection import Description, PeerConnection
from tests.sfu.live import metrics, offer_to_call_server, signal_and_sfu, users_in_a_room
from tests.sfu.test_simulcast_daemon import CountingTrack, Shaper, Subscriber, noisy_frames, until

FPS = 20
WINDOW = 20  # decoded frames looked at


def steps(subscriber: Subscriber, track: CountingTrack) -> list[int]:
    """How many frames the publisher encoded from each of the subscriber's last WINDOW decoded frames to
    the next (1: every frame; 2: TL0 and TL1; 4: TL0 alone)."""
    index = {n: i for i, n in enumerate(track.encoded)}
    shown = [index[n] for n, _ in subscriber.frames[-WINDOW:] if n in index]
    return [b - a for a, b in zip(shown, shown[1:])]


def every_frame(subscriber: Subscriber, track: CountingTrack) -> bool:
    gaps = steps(subscriber, track)
    return len(gaps) >= WINDOW - 2 and sum(1 for g in gaps if g == 1) >= 0.8 * len(gaps)


def thinned(subscriber: Subscriber, track: CountingTrack) -> bool:
    gaps = steps(subscriber, track)
    return len(gaps) >= WINDOW - 2 and all(g >= 2 for g in gaps)


async def scenario(tmp_path) -> None:
    async with signal_and_sfu(tmp_path, sfu_args=("--max-bitrate", "800000")) as env:
        room_id, clients = await users_in_a_room(env["signal_port"], ["tl_pub", "tl_wide", "tl_narrow"])
        assert (await clients[0].expect("room.topology", timeout=5))["mode"] == "sfu"
        publisher = PeerConnection()
        track = CountingTrack(noisy_frames(SyntheticCamera(320, 240, fps=FPS)), fps=FPS, count=FPS * 150)
        publisher.add_transceiver(track, "sendonly", send_encodings=[{"scalability_mode": "L1T3"}])
        wide, narrow = Subscriber(), Subscriber()
        shaper = Shaper(("127.0.0.1", env["sfu_media"]), 420_000)
        try:
            await publisher.set_local_description(publisher.create_offer())
            answer = await offer_to_call_server(clients[0], room_id, publisher.local_description.sdp)
            await publisher.set_remote_description(Description(answer["sdp"], "answer"))
            await wide.join(clients[1], room_id, env["sfu_media"])
            await narrow.join(clients[2], room_id, env["sfu_media"], shaper)
            assert await until(lambda: every_frame(wide, track) and thinned(narrow, track), 90), (
                steps(wide, track), steps(narrow, track))
            # what the shaped subscriber decodes is the pictures the publisher encoded (read back from them)
            assert all(n is not None for n, _ in narrow.frames[-WINDOW:])
            figures = await asyncio.to_thread(metrics, env["sfu_http"])
            assert figures['sfu_dropped_total{reason="temporal_layer"}'] > 0
            shaper.bottleneck.capacity = 1e9  # the limit is lifted: every frame again
            assert await until(lambda: every_frame(narrow, track), 90), steps(narrow, track)
            numbers = [n for n, _ in narrow.frames if n is not None]
            assert numbers == sorted(numbers)
            figures = await asyncio.to_thread(metrics, env["sfu_http"])
            assert figures["sfu_temporal_switches_total"] >= 1 and figures["sfu_layer_switches_total"] == 0
        finally:
            shaper.close()
            for pc in (publisher, wide.pc, narrow.pc):
                await pc.close()


@pytest.mark.timeout(240)  # two waits of up to 90 s each
def test_a_shaped_subscriber_is_sent_fewer_temporal_layers_and_all_of_them_when_the_limit_is_lifted(tmp_path):
    asyncio.run(scenario(tmp_path))
