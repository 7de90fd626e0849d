"""Simulcast through real netcore-signal and netcore-sfu processes, our PeerConnections on both ends.

The publisher sends three layers (``send_encodings`` q/4, h/2, f of a
960x540 camera at 10 frames/s with noise, so each encoder spends its whole
target: about 110, 450 and 1300 kbit/s); two subscribers receive them. One subscriber
reaches the call server through a UDP relay made by the test whose
server-to-client direction crosses a 300 kbit/s drop-tail bottleneck
(netcore.testing.bottleneck on the loop's clock): it is given the low
layer while the other gets the high one, and climbs back when the limit
is lifted. Around each of its switches, the shaped subscriber's decoded
frame numbers (read from the pictures) never skip more than 500 ms of the
frames the publisher encoded. (The other subscriber's are only checked to
move forward: all three peers run in this one process, and on a shared
machine its stalls read as congestion to every estimate, so the unshaped
subscriber goes down and up now and then too, and a stall loses frames
whatever the call server does.)
"""

from __future__ import annotations

import asyncio
import itertools
import json

import av
import numpy as np

from netcore.media.synthetic import SyntheticCamera, read_frame_number
from netcore.peer.connection import Description, PeerConnection
from netcore.peer.tracks import LocalVideoTrack
from netcore.testing.bottleneck import Bottleneck
from servers.analytics.events import validate
from tests.sfu.live import metrics, offer_to_call_server, signal_and_sfu, users_in_a_room

FPS = 10
WIDTH, HEIGHT = 960, 540
ENCODINGS = [{"rid": "q", "scale_resolution_down_by": 4}, {"rid": "h", "scale_resolution_down_by": 2},
             {"rid": "f"}]
LOW, HIGH = HEIGHT // 4 // 2 * 2, HEIGHT  # the encoder keeps sizes even
MAX_GAP = FPS // 2 - 1  # frames missing between two shown: at most 500 ms between them


def noisy_frames(camera: SyntheticCamera, amplitude: int = 12):
    """The camera's frames with noise on the luma (seven planes cycled): the encoders need their targets."""
    rng = np.random.default_rng(1)
    planes = [rng.integers(-amplitude, amplitude + 1, (camera.height, camera.width), dtype=np.int16)
              for _ in range(7)]
    for n in itertools.count():
        frame = camera.frame(n)
        yuv = frame.to_ndarray(format="yuv420p")
        yuv[:camera.height] = np.clip(yuv[:camera.height].astype(np.int16) + planes[n % 7], 0, 255)
        out = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        out.pts, out.time_base = frame.pts, frame.time_base
        yield out


class Shaper:
    """A UDP relay between one client and the call server; what the server sends crosses a bottleneck."""

    def __init__(self, server: tuple[str, int], rate: float) -> None:
        self.server = server
        self.bottleneck = Bottleneck(rate, delay=0.005, max_queue_delay=0.2)
        self.client: tuple[str, int] | None = None
        self.front = self.back = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self.front, _ = await loop.create_datagram_endpoint(lambda: _Side(self._from_client),
                                                            local_addr=("127.0.0.1", 0))
        self.back, _ = await loop.create_datagram_endpoint(lambda: _Side(self._from_server), remote_addr=self.server)
        return self.front.get_extra_info("sockname")[1]

    def _from_client(self, data: bytes, address) -> None:
        self.client = address
        self.back.sendto(data)

    def _from_server(self, data: bytes, address) -> None:
        loop = asyncio.get_running_loop()
        arrival = self.bottleneck.send(len(data), loop.time())
        if arrival is not None and self.client is not None:
            loop.call_at(arrival, self._deliver, data, self.client)

    def _deliver(self, data: bytes, client) -> None:
        if self.front is not None and not self.front.is_closing():
            self.front.sendto(data, client)

    def close(self) -> None:
        for side in (self.front, self.back):
            if side is not None:
                side.close()


class _Side(asyncio.DatagramProtocol):
    def __init__(self, on_datagram) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr) -> None:
        self.on_datagram(data, addr)


class CountingTrack(LocalVideoTrack):
    """The publisher's track, noting which frame numbers it handed to the encoders (a busy process skips
    frames at the source: those are no gap of the call server's making)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.encoded: list[int] = []
        self._next = 0

    def next_frame(self):
        frame = super().next_frame()
        if frame is not None:
            self.encoded.append(self._next)
            self._next += 1
        return frame

    def skip(self) -> bool:
        self._next += 1
        return super().next_frame() is not None


class Subscriber:
    """A receive-only PeerConnection: (frame number, height) of every video frame it decodes."""

    def __init__(self) -> None:
        self.pc = PeerConnection()
        self.frames: list[tuple[int | None, int]] = []
        self.pc.add_transceiver("video", "recvonly")
        self.pc.on("track", lambda track: track.on_frame(
            lambda frame: self.frames.append((read_frame_number(frame), frame.height))))

    async def join(self, client, room_id: str, sfu_port: int, shaper: Shaper | None = None) -> None:
        await self.pc.set_local_description(self.pc.create_offer())
        answer = (await offer_to_call_server(client, room_id, self.pc.local_description.sdp))["sdp"]
        if shaper is not None:  # the call server's candidate, as this client must reach it: the relay
            answer = answer.replace(f" {sfu_port} typ host", f" {await shaper.start()} typ host")
        await self.pc.set_remote_description(Description(answer, "answer"))

    def showing(self, height: int, frames: int = 20) -> bool:
        last = self.frames[-frames:]
        return len(last) == frames and all(h == height for _, h in last)


async def until(condition, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition() and loop.time() < deadline:
        await asyncio.sleep(0.2)
    return condition()


def gap_across_switches(frames: list[tuple[int | None, int]], encoded: list[int], fps: int = FPS,
                        switched=lambda before, after: before != after) -> tuple[int, list]:
    """The most frames the publisher encoded that went undecoded between two decoded ones, within a
    second (``fps`` frames) of a layer switch (``switched(height before, height after)``: by default the
    decoded height changing); and the frames around it.

    Only around switches: a process starved for a second loses frames whatever the call server does."""
    shown = [(n, h) for n, h in frames if n is not None]
    index = {n: i for i, n in enumerate(encoded)}
    switches = [i for i in range(1, len(shown)) if switched(shown[i - 1][1], shown[i][1])]
    worst, around = 0, []
    for at in switches:
        window = shown[max(0, at - fps):at + fps]
        for (a, _), (b, _) in zip(window, window[1:]):
            if a in index and b in index and index[b] - index[a] - 1 > worst:
                worst, around = index[b] - index[a] - 1, window
    return worst, around


async def scenario(tmp_path) -> None:
    async with signal_and_sfu(tmp_path) as env:
        room_id, clients = await users_in_a_room(env["signal_port"], ["sc_pub", "sc_wide", "sc_narrow"])
        assert (await clients[0].expect("room.topology", timeout=5))["mode"] == "sfu"
        publisher = PeerConnection()
        track = CountingTrack(noisy_frames(SyntheticCamera(WIDTH, HEIGHT, fps=FPS)), fps=FPS, count=FPS * 150)
        publisher.add_transceiver(track, "sendonly", send_encodings=ENCODINGS)
        wide, narrow = Subscriber(), Subscriber()
        shaper = Shaper(("127.0.0.1", env["sfu_media"]), 300_000)
        try:
            await publisher.set_local_description(publisher.create_offer())
            answer = await offer_to_call_server(clients[0], room_id, publisher.local_description.sdp)
            assert "a=simulcast:recv q;h;f" in answer["sdp"]
            await publisher.set_remote_description(Description(answer["sdp"], "answer"))
            await wide.join(clients[1], room_id, env["sfu_media"])
            await narrow.join(clients[2], room_id, env["sfu_media"], shaper)
            # the shaped subscriber gets the low layer, the other the high one (its last second of frames:
            # its estimate follows this process's stalls on a loaded machine, and it goes down now and then)
            assert await until(lambda: wide.showing(HIGH, FPS) and narrow.showing(LOW), 90), (
                [h for _, h in wide.frames[-40:]], narrow.frames[-3:])
            settled = {"wide": len(wide.frames), "narrow": len(narrow.frames)}
            await asyncio.sleep(3)
            assert narrow.showing(LOW, 30)  # and stays there
            shaper.bottleneck.capacity = 1e9  # the limit is lifted: it climbs back
            assert await until(lambda: narrow.showing(HIGH), 120), narrow.frames[-3:]
            heights = [h for _, h in narrow.frames[settled["narrow"]:]]
            assert heights[0] == LOW and heights[-1] == HIGH
            # no freeze across the switches: at most 500 ms of frames missing between two decoded ones
            gap, around = gap_across_switches(narrow.frames[settled["narrow"]:], track.encoded)
            assert gap <= MAX_GAP, (gap, around)
            for name, subscriber in (("wide", wide), ("narrow", narrow)):
                numbers = [n for n, _ in subscriber.frames[settled[name]:] if n is not None]
                assert len(numbers) > 0.8 * len(subscriber.frames[settled[name]:]), name
                assert numbers == sorted(numbers), name
            figures = await asyncio.to_thread(metrics, env["sfu_http"])
            narrow_id = clients[2].session_id
            switches = next(v for k, v in figures.items()
                            if k.startswith("sfu_subscriber_layer_switches_total") and narrow_id in k)
            assert switches >= 1 and figures["sfu_layer_switches_total"] >= switches
        finally:
            shaper.close()
            for pc in (publisher, wide.pc, narrow.pc):
                await pc.close()
    # the analytics have each of the shaped subscriber's switches (written by shutdown at the latest)
    records = [validate(json.loads(line)) for line in env["sfu_analytics"].read_text().splitlines()]
    moved = [r for r in records if r["event"] == "sfu.layer_switched" and r["user"] == "sc_narrow"]
    assert len(moved) >= 1 and all(r["call_id"] == room_id for r in moved), moved


def test_a_shaped_subscriber_gets_the_low_layer_and_climbs_back_when_the_limit_is_lifted(tmp_path):
    asyncio.run(scenario(tmp_path))
