"""Our PeerConnection and headless Chromium, each side offering in turn: media decoded both ways.

Chromium runs a small page (``tests/peer/browser_page.py``) served by the
test, with its fake camera (VP8, 640x480 at 20 fps) and microphone (Opus);
SDP and candidates are exchanged through DevTools ``Runtime.evaluate`` in
this process, trickled both ways. We send ``SyntheticCamera`` video, whose
frame numbers the page reads back from the pictures Chromium decodes.
"""

from __future__ import annotations

import asyncio

import pytest

from netcore.media.synthetic import SyntheticCamera, SyntheticMicrophone
from netcore.peer.connection import ConnectionState, PeerConnection
from netcore.peer.tracks import LocalAudioTrack, LocalVideoTrack
from tests.conftest import require_program
from tests.peer.browser_page import BrowserPeer, serve_page
from tests.sdp.chromium import Browser, Page

FRAMES = 150  # 5 s at 30 fps: enough to outlast the connection and the assertions
WANTED = 40  # frames each side must decode


@pytest.fixture(scope="module")
def chromium():
    browser = Browser(require_program("chromium"))
    yield browser
    browser.close()


class Counted:
    """What our side decoded from the browser: video frames and audio frames per track."""

    def __init__(self, pc: PeerConnection) -> None:
        self.video = 0
        self.audio = 0
        self.sizes: set[tuple[int, int]] = set()
        pc.on("track", self.on_track)

    def on_track(self, track) -> None:
        if track.kind == "video":
            track.on_frame(self.on_video)
        else:
            track.on_frame(lambda frame: setattr(self, "audio", self.audio + 1))

    def on_video(self, frame) -> None:
        self.video += 1
        self.sizes.add((frame.width, frame.height))


def trickle_to(browser: BrowserPeer, ours: PeerConnection) -> None:
    ours.on("icecandidate", lambda c: asyncio.get_running_loop().create_task(browser.add_candidate(c)))


async def until(condition, timeout: float, step: float = 0.1) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await condition():
            return True
        await asyncio.sleep(step)
    return await condition()


def increasing(numbers: list[int]) -> bool:
    return all(b > a for a, b in zip(numbers, numbers[1:]))


async def call(chromium: Browser, we_offer: bool) -> dict:
    async with serve_page() as url, Page(chromium) as page:
        await page.navigate(url)
        browser = BrowserPeer(page)
        await browser.open()
        ours = PeerConnection()
        got = Counted(ours)
        ours.add_track(LocalAudioTrack(SyntheticMicrophone(), count=FRAMES * 5 // 3))
        ours.add_track(LocalVideoTrack(SyntheticCamera(320, 240, fps=30), count=FRAMES))
        trickle_to(browser, ours)
        try:
            if we_offer:
                offer = ours.create_offer()
                await ours.set_local_description(offer)
                answer = await browser.answer(offer)
                await ours.set_remote_description(answer)
            else:
                offer = await browser.create_offer()
                await ours.set_remote_description(offer)
                answer = ours.create_answer()
                await ours.set_local_description(answer)
                await browser.accept(answer)

            async def connected() -> bool:
                await browser.candidates_to(ours)
                return ours.connection_state is ConnectionState.CONNECTED
            assert await until(connected, 15), (offer.sdp, answer.sdp)

            async def flowing() -> bool:
                inbound = {s["kind"]: s for s in await browser.inbound()}
                numbers = await browser.numbers()
                return (got.video >= WANTED and got.audio >= 50
                        and inbound.get("video", {}).get("framesDecoded", 0) >= WANTED
                        and inbound.get("audio", {}).get("packetsReceived", 0) >= 50
                        and any(len(n) >= WANTED for n in numbers.values()))
            await until(flowing, 20, 0.25)
            return {"got": got, "transport": ours.transport.stats, "inbound": await browser.inbound(), "numbers": await browser.numbers(),
                    "stats": ours.get_stats(), "offer": offer.sdp, "answer": answer.sdp}
        finally:
            await ours.close()


@pytest.mark.parametrize("we_offer", [True, False], ids=["netcore-offers", "chromium-offers"])
async def test_media_both_ways_with_chromium(chromium, we_offer):
    result = await asyncio.wait_for(call(chromium, we_offer), 60)
    got, inbound = result["got"], {s["kind"]: s for s in result["inbound"]}
    context = (result["offer"], result["answer"], result["inbound"], result["numbers"], result["stats"])
    # Chromium decoded our VP8 and Opus, and showed our frames in order
    assert inbound["video"]["framesDecoded"] >= WANTED, context
    assert inbound["audio"]["packetsReceived"] >= 50 and inbound["audio"]["totalSamplesReceived"] > 0, context
    (numbers,) = result["numbers"].values()
    assert len(numbers) >= WANTED and increasing(numbers) and numbers[-1] < FRAMES, context
    # we decoded Chromium's VP8 and Opus
    assert got.video >= WANTED and got.audio >= 50, context
    ours = [s for s in result["stats"].values() if s["type"] == "inbound-rtp"]
    assert {s["kind"] for s in ours} == {"audio", "video"}, context
    # every packet Chromium sent found its stream: probe padding and retransmissions on its RTX SSRC too
    assert result["transport"].unroutable == 0, result["transport"]
