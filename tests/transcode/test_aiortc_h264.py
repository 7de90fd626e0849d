"""A VP8 source transcoded to H.264 and sent through our peer connection reaches a peer that takes only
H.264 (aiortc, restricted by its codec preferences), showing the source's pictures: frame numbers match.

aioice offers no 127.0.0.1 host candidates, so aiortc runs relay-only through
our TURN daemon, as in tests/peer/test_aiortc_call.py.
"""

from __future__ import annotations

import asyncio

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from netcore.media.codecs import VideoEncoder
from netcore.media.synthetic import SyntheticCamera, read_frame_number
from netcore.peer.connection import ConnectionState, Description, PeerConnection
from netcore.peer.tracks import CodedVideoTrack
from netcore.transcode.core import RenditionEncoded, SourceFrame, Transcoder
from netcore.transcode.ladder import codec_ladder
from tests.peer.aiortc_tracks import frames_of
from tests.peer.test_aiortc_call import until
from tests.peers import netcore_turn_process
from tests.turn.live import free_port_range

FPS = 30
FRAMES = 90
WANTED = 45  # pictures aiortc must show (it starts on a key frame, after ICE through the relay)


async def publish(transcoder: Transcoder, track: CodedVideoTrack, produced: list[int]) -> None:
    """The publisher's VP8 at 30 fps into the transcoder; its H.264 rendition into the coded track."""
    loop = asyncio.get_running_loop()
    camera, source = SyntheticCamera(640, 360), VideoEncoder("VP8", target_bitrate=800_000)
    start = loop.time()
    for number in range(FRAMES):
        await asyncio.sleep(max(0.0, start + number / FPS - loop.time()))
        captured = loop.time()
        encoded = source.encode(camera.frame(number))
        assert encoded is not None
        transcoder.push(SourceFrame(encoded.payloads, encoded.timestamp, encoded.keyframe, captured))
        transcoder.process()
        while (event := transcoder.poll_event()) is not None:
            if isinstance(event, RenditionEncoded):
                track.put(event.frame, captured)
        produced.append(number)
    track.end()


async def call(turn_port: int) -> dict:
    loop = asyncio.get_running_loop()
    theirs = RTCPeerConnection(RTCConfiguration(
        iceServers=[RTCIceServer(urls=f"turn:127.0.0.1:{turn_port}", username="u", credential="p")],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY))
    numbers: list[int | None] = []
    sizes: set[tuple[int, int]] = set()
    tasks: list[asyncio.Task] = []

    async def consume(track) -> None:
        async for frame in frames_of(track):
            sizes.add((frame.width, frame.height))
            numbers.append(read_frame_number(frame))

    theirs.on("track", lambda track: tasks.append(asyncio.ensure_future(consume(track))))
    ours = PeerConnection()
    transcoder = Transcoder("VP8", codec_ladder("H264", bitrate=800_000), clock=loop.time)
    track = CodedVideoTrack("H264", on_keyframe_request=lambda: transcoder.request_keyframe("h264"))
    produced: list[int] = []
    try:
        ours.add_track(track)
        await ours.set_local_description(ours.create_offer())
        offer = ours.local_description.sdp  # with our candidates: aiortc does not take trickled ones
        await theirs.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        for transceiver in theirs.getTransceivers():
            transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                             if c.mimeType in ("video/H264", "video/rtx")])
        await theirs.setLocalDescription(await theirs.createAnswer())
        answer = theirs.localDescription.sdp
        await ours.set_remote_description(Description(answer, "answer"))
        await until(lambda: ours.connection_state is ConnectionState.CONNECTED, 15.0)
        assert ours.connection_state is ConnectionState.CONNECTED
        await publish(transcoder, track, produced)
        await until(lambda: len(numbers) >= WANTED, 10.0)
        return {"offer": offer, "answer": answer, "numbers": numbers, "sizes": sizes,
                "produced": produced, "sent_codec": ours.transceivers[0].sender.codec,
                "metrics": transcoder.metrics}
    finally:
        await ours.close()
        await theirs.close()
        for task in tasks:
            task.cancel()


def test_a_vp8_source_reaches_an_h264_only_peer_as_h264_of_the_same_pictures(tmp_path):
    low, high = free_port_range(40)
    with netcore_turn_process(tmp_path, "--user", "u:p", "--allow-loopback-peers",
                              "--min-port", str(low), "--max-port", str(high)) as (_, turn_port):
        result = asyncio.run(asyncio.wait_for(call(turn_port), 90))
    assert "VP8" not in result["answer"] and "H264" in result["answer"]  # aiortc takes nothing else
    assert result["sent_codec"] == "H264"
    numbers = result["numbers"]
    assert None not in numbers and len(numbers) >= WANTED
    assert numbers == sorted(set(numbers)) and set(numbers) <= set(result["produced"])
    assert result["sizes"] == {(640, 360)}
    assert result["metrics"].renditions["h264"].frames_encoded == FRAMES
