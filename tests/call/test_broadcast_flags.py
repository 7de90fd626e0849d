"""netcore-call's flags for broadcast tests: a simulcast camera, a noisy picture, a small tile's height."""

from __future__ import annotations

import asyncio

from netcore.media.codecs import VideoEncoder
from netcore.media.synthetic import SyntheticCamera, read_frame_number
from netcore.peer.connection import PeerConnection
from servers.call.main import options_from, parse_args
from servers.call.media import LocalMedia


def test_simulcast_and_noise_flags_make_a_three_layer_offer_of_the_noisy_camera():
    args = parse_args(["--user", "u", "--password", "p", "join", "ROOM", "--video", "--simulcast", "--noise", "12",
                       "--size", "640x360", "--max-height", "90"])
    assert args.max_height == 90 and args.width == 640
    choice = options_from(args).media
    assert choice.simulcast and choice.noise == 12 and not choice.audio
    sdp = asyncio.run(offer(LocalMedia(choice)))
    assert "a=simulcast:send q;h;f" in sdp and sdp.count("a=rid:") == 3, sdp


async def offer(media: LocalMedia) -> str:
    pc = PeerConnection()
    media.add_to(pc)
    try:
        return pc.create_offer().sdp
    finally:
        await pc.close()


def coded_bytes(camera: SyntheticCamera, frames: int = 10) -> int:
    encoder = VideoEncoder(target_bitrate=800_000)
    total = 0
    for n in range(frames):
        coded = encoder.encode(camera.frame(n))
        total += sum(len(p) for p in coded.payloads) if coded else 0
    return total


def test_a_noisy_camera_still_carries_its_frame_numbers_and_costs_its_encoder_more():
    noisy, plain = SyntheticCamera(640, 360, 10, noise=12), SyntheticCamera(640, 360, 10)
    assert [read_frame_number(noisy.frame(n)) for n in (0, 1, 77)] == [0, 1, 77]
    assert coded_bytes(noisy) > 3 * coded_bytes(plain)


def test_temporal_layers_and_max_fps_flags_code_each_simulcast_layer_l1t3_and_ask_for_a_low_frame_rate():
    args = parse_args(["--user", "u", "--password", "p", "join", "ROOM", "--video", "--simulcast",
                       "--temporal-layers", "3", "--max-fps", "3"])
    assert args.max_fps == 3
    assert asyncio.run(encodings(LocalMedia(options_from(args).media))) == [("q", 3), ("h", 3), ("f", 3)]


async def encodings(media: LocalMedia) -> list[tuple[str | None, int]]:
    """The video's send encodings: (rid, temporal layers) each."""
    pc = PeerConnection()
    try:
        media.add_to(pc)
        (video,) = [t for t in pc.transceivers if t.kind == "video"]
        return [(e.rid, e.temporal_layers) for e in video.encodings]
    finally:
        await pc.close()
