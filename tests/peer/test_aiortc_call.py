"""Our PeerConnection against aiortc's RTCPeerConnection, each side offering in turn.

aioice offers no 127.0.0.1 host candidates, so aiortc runs relay-only
through our TURN daemon (``netcore-turn``, started here, loopback peers
allowed) and we use our 127.0.0.1 host candidate. Video is VP8 from
``SyntheticCamera`` on both sides, so frame numbers read back with
``read_frame_number`` whoever decodes; audio is Opus.
"""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from netcore.media.synthetic import SyntheticCamera, SyntheticMicrophone, read_frame_number
from netcore.peer.connection import ConnectionState, Description, PeerConnection
from netcore.peer.tracks import LocalAudioTrack, LocalVideoTrack
from tests.peer.aiortc_tracks import CameraTrack, MicrophoneTrack, frames_of
from tests.peers import netcore_turn_process
from tests.turn.live import free_port_range

FRAMES = 60  # at 30 fps
WANTED = 40  # frames each side must decode (aiortc starts its jitter buffer on a key frame)


class AiortcSink:
    def __init__(self, pc: RTCPeerConnection) -> None:
        self.numbers: list[int] = []
        self.audio = 0
        self.tasks: list[asyncio.Task] = []
        pc.on("track", self.on_track)

    def on_track(self, track) -> None:
        self.tasks.append(asyncio.ensure_future(self.consume(track)))

    async def consume(self, track) -> None:
        async for frame in frames_of(track):
            if track.kind == "video":
                number = read_frame_number(frame)
                if number is not None:
                    self.numbers.append(number)
            else:
                self.audio += 1


class OurSink:
    def __init__(self, pc: PeerConnection) -> None:
        self.numbers: list[int] = []
        self.audio = 0
        pc.on("track", self.on_track)

    def on_track(self, track) -> None:
        if track.kind == "video":
            track.on_frame(lambda frame: self.numbers.append(read_frame_number(frame)))
        else:
            track.on_frame(lambda frame: setattr(self, "audio", self.audio + 1))


async def until(condition, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition() and loop.time() < deadline:
        await asyncio.sleep(0.05)


async def call(turn_port: int, we_offer: bool) -> dict:
    ours = PeerConnection()
    theirs = RTCPeerConnection(RTCConfiguration(
        iceServers=[RTCIceServer(urls=f"turn:127.0.0.1:{turn_port}", username="u", credential="p")],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY))
    our_sink, their_sink = OurSink(ours), AiortcSink(theirs)
    ours.add_track(LocalAudioTrack(SyntheticMicrophone(), count=FRAMES * 5 // 3))
    ours.add_track(LocalVideoTrack(SyntheticCamera(320, 240, fps=30), count=FRAMES))
    theirs.addTrack(MicrophoneTrack())
    theirs.addTrack(CameraTrack())
    try:
        if we_offer:
            await ours.set_local_description(ours.create_offer())
            offer = ours.local_description  # with our candidates: aiortc does not take trickled ones
            await theirs.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
            await theirs.setLocalDescription(await theirs.createAnswer())
            await ours.set_remote_description(Description(theirs.localDescription.sdp, "answer"))
        else:
            await theirs.setLocalDescription(await theirs.createOffer())
            await ours.set_remote_description(Description(theirs.localDescription.sdp, "offer"))
            await ours.set_local_description(ours.create_answer())
            await theirs.setRemoteDescription(RTCSessionDescription(ours.local_description.sdp, "answer"))
        await until(lambda: ours.connection_state is ConnectionState.CONNECTED, 15.0)
        assert ours.connection_state is ConnectionState.CONNECTED
        await until(lambda: len(their_sink.numbers) >= WANTED and len(our_sink.numbers) >= WANTED
                    and our_sink.audio >= 50 and their_sink.audio >= 50, 20.0)
        stats = ours.get_stats()
        their_stats = await theirs.getStats()
        return {"ours": our_sink, "theirs": their_sink, "stats": stats,
                "their_stats": list(their_stats.values()), "state": theirs.connectionState}
    finally:
        await ours.close()
        await theirs.close()
        for task in their_sink.tasks:
            task.cancel()


def increasing(numbers: list) -> bool:
    return all(b > a for a, b in zip(numbers, numbers[1:]))


@pytest.mark.parametrize("we_offer", [True, False], ids=["netcore-offers", "aiortc-offers"])
def test_media_both_ways_with_aiortc(tmp_path, we_offer):
    low, high = free_port_range(40)
    with netcore_turn_process(tmp_path, "--user", "u:p", "--allow-loopback-peers",
                              "--min-port", str(low), "--max-port", str(high)) as (_, turn_port):
        result = asyncio.run(asyncio.wait_for(call(turn_port, we_offer), 60))
    theirs, ours = result["theirs"], result["ours"]
    # aiortc decoded our VP8 and Opus
    assert len(theirs.numbers) >= WANTED and increasing(theirs.numbers) and theirs.numbers[-1] < FRAMES
    assert theirs.audio >= 50
    # we decoded aiortc's VP8 and Opus, in order
    assert None not in ours.numbers and len(ours.numbers) >= WANTED and increasing(ours.numbers)
    assert ours.audio >= 50
    inbound = [s for s in result["stats"].values() if s["type"] == "inbound-rtp"]
    assert {s["kind"] for s in inbound} == {"audio", "video"}
    assert all(s["packetsReceived"] > 0 for s in inbound)
    their_inbound = [s for s in result["their_stats"] if s.type == "inbound-rtp"]
    assert their_inbound and all(s.packetsReceived > 0 for s in their_inbound)
