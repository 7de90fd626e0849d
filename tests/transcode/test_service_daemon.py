"""The transcoding service end to end: real netcore-signal, netcore-sfu and netcore-transcode processes.

A publisher (our PeerConnection) sends one 720p VP8 layer of the synthetic
camera (frame numbers readable from the pictures, noise so the encoder
spends its target, at most 600 kbit/s) at 6 frames/s; two subscribers
watch it, one through a UDP relay whose server-to-client direction crosses
a 400 kbit/s bottleneck. (The call server caps links at 800 kbit/s: the
unshaped subscriber's estimate reaches that on a busy machine, and a dip
below it still fits the publisher's layer. All three peers run in this one
process: its stalls read as congestion to every estimate.)

* The shaped subscriber's budget is below the publisher's only layer: the
  call server has a worker make the 360p + 180p ladder, and the subscriber
  decodes a rendition of at most 360 lines whose frame numbers are the
  source's, in order.
* The other subscriber asks for 360 lines (``room.quality``): it is switched
  to a rendition (360p, or 180p while its estimate is below 360p's), and
  back to the original when it lifts the request, with no more than 500 ms of the source's frames missing around
  either switch.
* The worker is killed (SIGKILL): the shaped subscriber is sent the original
  again (its key frames, 720 lines, reach its transport); a second worker
  links, the job is placed there and the subscriber decodes a rendition
  again. The second worker's /metrics count its work.
* A subscriber that cannot decode VP8 (our PeerConnection offering H.264
  alone; aiortc restricted by its codec preferences, relay-only through
  netcore-turn) is sent the worker's H.264 rendition and decodes the
  source's pictures, frame numbers matching, at the source's size.
"""

from __future__ import annotations

import asyncio
import signal

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy

from netcore.media.synthetic import SyntheticCamera, read_frame_number
from netcore.peer.connection import Description, PeerConfiguration, PeerConnection
from netcore.rtp.vp8 import Vp8Descriptor, vp8_keyframe_size
from tests.peer.aiortc_tracks import frames_of
from tests.peers import netcore_turn_process
from tests.sfu.live import SECRET, _start, health, metrics, offer_to_call_server, signal_and_sfu, stop, users_in_a_room
from tests.sfu.test_simulcast_daemon import (CountingTrack, Shaper, Subscriber, gap_across_switches, noisy_frames,
                                             until)
from tests.turn.live import free_port_range

FPS = 6  # frames/s: 720p in three peers of one process and a worker, on a shared 2-core machine
WIDTH, HEIGHT = 1280, 720
RENDITION = 360
SHAPED = 400_000
MAX_BITRATE = 800_000  # the call server's link cap: what an unshaped subscriber's estimate reaches on a busy machine
LAYER = 600_000  # the publisher's own cap: an unshaped subscriber whose estimate dips below the link cap still fits it
NOISE = 8  # luma noise: the publisher's encoder spends its target (well above what the shaped link takes)
MAX_GAP = FPS // 2 - 1  # frames missing between two shown: at most 500 ms between them


async def start_worker(tmp_path, env: dict, name: str, capacity: int = 2):
    """netcore-transcode linked to the call server (waits until the call server has it): (process, http port)."""
    proc, line = await _start(["-m", "servers.transcode.main", "--sfu", f"ws://127.0.0.1:{env['sfu_transcode']}/",
                               "--secret", SECRET, "--capacity", str(capacity), "--name", name,
                               "--http", "127.0.0.1:0"], tmp_path / f"{name}.log")
    http = int(line.decode().split("http=")[1])
    for _ in range(100):
        if name in (await asyncio.to_thread(health, env["sfu_http"])).get("transcode_workers", {}):
            break
        await asyncio.sleep(0.1)
    return proc, http


class Watcher(Subscriber):
    """A subscriber that also notes the height of every VP8 key frame reaching its transport (decodable
    or not: through a narrow link a 720p key frame may never arrive whole)."""

    def __init__(self) -> None:
        super().__init__()
        self.keyframe_heights: list[int] = []
        self.pc.on("rtpreceived", self._tap)

    def _tap(self, mid, packet, now) -> None:
        try:
            descriptor, pos = Vp8Descriptor.parse(packet.payload)
        except Exception:
            return
        if descriptor.start_of_partition:
            size = vp8_keyframe_size(packet.payload)
            if size is not None:
                self.keyframe_heights.append(size[1])

    def showing_at_most(self, height: int, frames: int = 20) -> bool:
        last = self.frames[-frames:]
        return len(last) == frames and all(h <= height for _, h in last)


def original_and_rendition(before: int, after: int) -> bool:
    """A switch between the original (720 lines) and a rendition. (Switches between the two renditions
    are the estimate's doing: only these are judged.)"""
    return (before == HEIGHT) != (after == HEIGHT)


def inbound(pc: PeerConnection) -> list[dict]:
    """The video inbound-rtp stats of ``pc`` (what an assertion shows when a subscriber is stuck)."""
    return [{k: v for k, v in stats.items() if k in ("packetsReceived", "packetsLost", "framesDecoded",
                                                     "keyFramesDecoded", "nackCount", "pliCount", "firCount")}
            for stats in pc.get_stats().values() if stats.get("type") == "inbound-rtp"]


def numbers_are_the_sources(frames: list, encoded: list[int]) -> bool:
    """Every picture shown is one the publisher encoded, in order; except that at a switch from the
    original to a rendition the pictures may step back by the worker's latency (the rendition is
    that much behind the original: its key frame is an older picture), at most 500 ms."""
    numbers = [n for n, _ in frames]
    if None in numbers or not set(numbers) <= set(encoded):
        return False
    for (a, before), (b, after) in zip(frames, frames[1:]):
        if b < a and not (before == HEIGHT and after < HEIGHT and a - b <= FPS // 2):
            return False
    return True


async def scenario(tmp_path) -> dict:
    sfu_args = ("--transcode", "127.0.0.1:0", "--max-bitrate", str(MAX_BITRATE))
    async with signal_and_sfu(tmp_path, sfu_args=sfu_args) as env:
        room_id, clients = await users_in_a_room(env["signal_port"], ["tc_pub", "tc_wide", "tc_narrow"])
        worker, _ = await start_worker(tmp_path, env, "w1")
        second = None
        publisher = PeerConnection(PeerConfiguration(max_bitrate=LAYER))
        track = CountingTrack(noisy_frames(SyntheticCamera(WIDTH, HEIGHT, fps=FPS), NOISE), fps=FPS, count=FPS * 400)
        transceiver = publisher.add_transceiver(track, "sendonly")
        wide, narrow = Watcher(), Watcher()
        shaper = Shaper(("127.0.0.1", env["sfu_media"]), SHAPED)
        try:
            await publisher.set_local_description(publisher.create_offer())
            answer = await offer_to_call_server(clients[0], room_id, publisher.local_description.sdp)
            assert "a=simulcast" not in answer["sdp"]
            await publisher.set_remote_description(Description(answer["sdp"], "answer"))
            await wide.join(clients[1], room_id, env["sfu_media"])
            assert await until(lambda: wide.showing(HEIGHT, 2 * FPS), 60), (wide.frames[-3:], inbound(wide.pc))
            await narrow.join(clients[2], room_id, env["sfu_media"], shaper)

            # the shaped subscriber: a rendition of the worker, the source's frame numbers
            assert await until(lambda: narrow.showing_at_most(RENDITION), 120), (
                narrow.frames[-3:], wide.frames[-3:], inbound(narrow.pc))
            mark = len(narrow.frames) - 20
            await asyncio.sleep(3)
            # (and mostly stays there: a worker starved of CPU for a second is taken for stopped, and its
            # subscribers are sent the original meanwhile)
            heights = [h for _, h in narrow.frames[mark:]]
            assert len(heights) > 20 + FPS and sum(h <= RENDITION for h in heights) >= 0.8 * len(heights), heights
            assert numbers_are_the_sources(narrow.frames[mark:], track.encoded), narrow.frames[mark:]

            # the other one asks for 360 lines, then for no limit: a switch each way, no freeze
            assert await until(lambda: wide.showing(HEIGHT, FPS), 60), wide.frames[-3:]
            mark = len(wide.frames)
            quality = {"room_id": room_id, "publisher": clients[0].session_id, "track": transceiver.mid}
            await clients[1].ok("room.quality", {**quality, "max_height": RENDITION})
            assert await until(lambda: wide.showing_at_most(RENDITION, FPS), 60), wide.frames[-3:]
            await clients[1].ok("room.quality", quality)
            assert await until(lambda: wide.showing(HEIGHT, FPS), 60), wide.frames[-3:]
            heights = [h for _, h in wide.frames[mark:]]
            assert min(heights) <= RENDITION and heights[-1] == HEIGHT
            gap, around = gap_across_switches(wide.frames[mark:], track.encoded, FPS, original_and_rendition)
            assert gap <= MAX_GAP, (gap, around, len(wide.frames) - mark)
            assert numbers_are_the_sources(wide.frames[mark:], track.encoded)

            # the worker dies: the shaped subscriber is sent the original again
            seen = len(narrow.keyframe_heights)
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
            assert await until(lambda: HEIGHT in narrow.keyframe_heights[seen:], 20), narrow.keyframe_heights[seen:]
            # a second worker: the rendition again
            second, second_http = await start_worker(tmp_path, env, "w2")
            mark = len(narrow.frames)
            assert await until(lambda: len(narrow.frames) > mark + 20 and narrow.showing_at_most(RENDITION), 120), (
                narrow.frames[-3:])
            assert numbers_are_the_sources(narrow.frames[-20:], track.encoded)
            figures = await asyncio.to_thread(metrics, second_http)
            sfu = await asyncio.to_thread(metrics, env["sfu_http"])
        finally:
            shaper.close()
            for pc in (publisher, wide.pc, narrow.pc):
                await pc.close()
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
            code = await stop(second) if second is not None else None
        assert code == 0  # SIGTERM: a clean exit
        return {"worker": figures, "sfu": sfu, "log": (tmp_path / "w2.log").read_text()}


def test_renditions_reach_a_narrow_subscriber_and_survive_the_worker_dying(tmp_path):
    result = asyncio.run(scenario(tmp_path))
    worker, sfu = result["worker"], result["sfu"]
    assert worker["transcode_decode_seconds_count"] > 20
    assert worker['transcode_encode_seconds_count{rendition="q"}'] > 10
    assert worker["transcode_jobs"] >= 1
    assert sfu["sfu_transcodes_started_total"] >= 2 and sfu["sfu_transcodes_stopped_total"] >= 1
    assert '"event": "job.started"' in result["log"] and '"event": "transcode.stopped"' in result["log"]


class H264Only(Subscriber):
    """A subscriber whose receive section offers H.264 alone (set_codec_preferences): it cannot decode the
    publisher's VP8."""

    def __init__(self) -> None:
        super().__init__()
        self.pc.transceivers[0].set_codec_preferences(["H264"])


class Publisher:
    """Our PeerConnection sending the one 720p VP8 layer (the frame numbers it encoded in ``track``)."""

    def __init__(self) -> None:
        self.pc = PeerConnection()
        self.track = CountingTrack(noisy_frames(SyntheticCamera(WIDTH, HEIGHT, fps=FPS), NOISE), fps=FPS,
                                   count=FPS * 200)
        self.pc.add_transceiver(self.track, "sendonly")

    async def join(self, client, room_id: str) -> None:
        await self.pc.set_local_description(self.pc.create_offer())
        answer = await offer_to_call_server(client, room_id, self.pc.local_description.sdp)
        await self.pc.set_remote_description(Description(answer["sdp"], "answer"))


async def h264_scenario(tmp_path) -> dict:
    async with signal_and_sfu(tmp_path, threshold=1, sfu_args=("--transcode", "127.0.0.1:0")) as env:
        room_id, clients = await users_in_a_room(env["signal_port"], ["h264_pub", "h264_sub"])
        worker, worker_http = await start_worker(tmp_path, env, "w1")
        publisher = Publisher()
        subscriber = H264Only()
        try:
            await publisher.join(clients[0], room_id)
            await subscriber.pc.set_local_description(subscriber.pc.create_offer())
            offer = subscriber.pc.local_description.sdp
            answer = (await offer_to_call_server(clients[1], room_id, offer))["sdp"]
            await subscriber.pc.set_remote_description(Description(answer, "answer"))
            assert await until(lambda: len(subscriber.frames) >= 30, 120), subscriber.frames[-3:]
            receiver = subscriber.pc.transceivers[0].receiver
            figures = await asyncio.to_thread(metrics, worker_http)
            return {"offer": offer, "answer": answer, "frames": list(subscriber.frames),
                    "encoded": list(publisher.track.encoded), "codec": receiver.codec,
                    "sent": publisher.pc.transceivers[0].sender.codec, "worker": figures}
        finally:
            for pc in (publisher.pc, subscriber.pc):
                await pc.close()
            await stop(worker)


def test_a_subscriber_that_takes_only_h264_gets_the_vp8_publisher_as_h264_of_the_same_pictures(tmp_path):
    result = asyncio.run(scenario_with_timeout(h264_scenario(tmp_path)))
    assert "VP8" not in result["offer"] and "VP8" not in result["answer"] and "H264" in result["answer"]
    assert result["sent"] == "VP8" and result["codec"] == "H264"  # the publisher's VP8, the worker's H.264
    assert numbers_are_the_sources(result["frames"], result["encoded"]), result["frames"]
    assert {h for _, h in result["frames"]} == {HEIGHT}  # the source's size
    assert result["worker"]['transcode_encode_seconds_count{rendition="h264"}'] >= 30


async def scenario_with_timeout(coroutine, seconds: float = 300.0):
    return await asyncio.wait_for(coroutine, seconds)


async def aiortc_h264_scenario(tmp_path, turn_port: int) -> dict:
    """As :func:`h264_scenario`, the subscriber being aiortc restricted to H.264 by its codec preferences
    (relay-only through netcore-turn: aiortc offers no 127.0.0.1 host candidate)."""
    async with signal_and_sfu(tmp_path, threshold=1, sfu_args=("--transcode", "127.0.0.1:0")) as env:
        room_id, clients = await users_in_a_room(env["signal_port"], ["ah_pub", "ah_sub"])
        worker, worker_http = await start_worker(tmp_path, env, "w1")
        publisher = Publisher()
        theirs = RTCPeerConnection(RTCConfiguration(
            iceServers=[RTCIceServer(urls=f"turn:127.0.0.1:{turn_port}", username="u", credential="p")],
            iceTransportPolicy=RTCIceTransportPolicy.RELAY, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        theirs.addTransceiver("video", direction="recvonly").setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/H264", "video/rtx")])
        frames: list[tuple[int | None, int]] = []
        tasks: list[asyncio.Task] = []

        async def consume(remote) -> None:
            async for frame in frames_of(remote):
                frames.append((read_frame_number(frame), frame.height))

        theirs.on("track", lambda remote: tasks.append(asyncio.ensure_future(consume(remote))))
        try:
            await publisher.join(clients[0], room_id)
            await theirs.setLocalDescription(await theirs.createOffer())
            offer = theirs.localDescription.sdp
            answer = (await offer_to_call_server(clients[1], room_id, offer))["sdp"]
            await theirs.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            assert await until(lambda: len(frames) >= 30, 120), frames[-3:]
            figures = await asyncio.to_thread(metrics, worker_http)
            return {"offer": offer, "answer": answer, "frames": list(frames), "encoded": list(publisher.track.encoded),
                    "worker": figures}
        finally:
            await publisher.pc.close()
            await theirs.close()
            for task in tasks:
                task.cancel()
            await stop(worker)


def test_aiortc_taking_only_h264_gets_the_vp8_publisher_as_h264_of_the_same_pictures(tmp_path):
    low, high = free_port_range(40)
    with netcore_turn_process(tmp_path, "--user", "u:p", "--allow-loopback-peers",
                              "--min-port", str(low), "--max-port", str(high)) as (_, turn_port):
        result = asyncio.run(scenario_with_timeout(aiortc_h264_scenario(tmp_path, turn_port)))
    assert "VP8" not in result["offer"] and "VP8" not in result["answer"] and "H264" in result["answer"]
    assert numbers_are_the_sources(result["frames"], result["encoded"]), result["frames"]
    assert {h for _, h in result["frames"]} == {HEIGHT}
    assert result["worker"]['transcode_encode_seconds_count{rendition="h264"}'] >= 30
