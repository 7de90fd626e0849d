"""What a browser's jitter buffer adds under bench/call.py's impairment: Chromium's beside ours.

One call between our peer (``netcore.testing.callpeer``, a process: the
synthetic 640x480 camera at 30 fps and audio) and headless Chromium (the
interop tests' page, its fake 640x480 camera at 20 fps and microphone),
through ``bench/call.py``'s forwarder with its impairment (5 % loss, 25 to
55 ms one way: 50 ms RTT, 30 ms jitter), then the same on loopback. Over
``--duration`` seconds each side's W3C ``jitterBufferDelay`` per frame
(first packet in to the frame leaving for the decoder, summed, divided by
``jitterBufferEmittedCount``): Chromium's for the video it receives from us,
ours (``JitterMetrics.delay_total / frames_popped``) for the video it
receives from Chromium. With ``bench/call.py``'s figure of our jitter buffer
in a call of two of our peers, this is the reference for what a browser adds.

Usage: python3 bench/call_chromium.py [--duration 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.call import Forwarder, Peer, peer_command  # noqa: E402
from netcore.peer.connection import Description  # noqa: E402
from tests.peer.browser_page import BrowserPeer, serve_page  # noqa: E402
from tests.sdp.chromium import Browser, Page  # noqa: E402

GATHERED = ("new Promise((done) => { if (pc.iceGatheringState === 'complete') done(); else "
            "pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && done()); })"
            ".then(() => pc.localDescription.sdp)")
VIDEO_IN = ("pc.getStats().then((stats) => { let v = null; stats.forEach((s) => { "
            "if (s.type === 'inbound-rtp' && s.kind === 'video') v = s; }); return v; })")


def loopback_udp_only(sdp: str) -> str:
    """The browser's description with its candidates other than UDP on 127.0.0.1 dropped (it gathers on
    every interface; the forwarder stands in for one loopback address)."""
    lines = []
    for line in sdp.replace("\r\n", "\n").split("\n"):
        match = re.match(r"a=candidate:\S+ \d+ (\S+) \d+ (\S+) \d+ typ", line)
        if match and (match.group(1).lower() != "udp" or match.group(2) != "127.0.0.1"):
            continue
        lines.append(line)
    return "\r\n".join(line for line in lines if line) + "\r\n"


async def call(browser: Browser, duration: float, impaired: bool) -> dict:
    forwarder = Forwarder(0.05, 0.025, 0.03) if impaired else Forwarder(0.0, 0.0, 0.0)
    ours = Peer(peer_command("ours", True, duration))
    try:
        async with serve_page() as url, Page(browser) as page:
            await page.navigate(url)
            chromium = BrowserPeer(page)
            await chromium.start()
            offer = await asyncio.to_thread(ours.wait_for, "offer")
            await chromium.eval(f"pc.setRemoteDescription({{type: 'offer', sdp: {_js(forwarder.rewrite(offer['sdp'], 'a'))}}})"
                                ".then(() => pc.setLocalDescription())")
            answer = loopback_udp_only(await chromium.eval(GATHERED))
            ours.send({"type": "answer", "sdp": Description(forwarder.rewrite(answer, "b"), "answer").sdp})
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # both ways decoding
                stats = await chromium.eval(VIDEO_IN)
                if stats and stats.get("framesDecoded", 0) > 30 and _ours_video(ours)[1] > 30:
                    break
                await asyncio.sleep(0.2)
            else:
                raise TimeoutError("no video both ways")
            first, ours_first = await chromium.eval(VIDEO_IN), _ours_video(ours)
            await asyncio.sleep(duration)
            last, ours_last = await chromium.eval(VIDEO_IN), _ours_video(ours)
    finally:
        ours.finish()
        forwarder.stop()
    emitted = last["jitterBufferEmittedCount"] - first["jitterBufferEmittedCount"]
    popped = ours_last[1] - ours_first[1]
    return {
        "chromium": (last["jitterBufferDelay"] - first["jitterBufferDelay"]) / emitted if emitted else float("nan"),
        "chromium_target": (last.get("jitterBufferTargetDelay", 0) - first.get("jitterBufferTargetDelay", 0))
        / emitted if emitted else float("nan"),
        "chromium_frames": emitted,
        "chromium_freezes": last.get("freezeCount", 0) - first.get("freezeCount", 0),
        "ours": (ours_last[0] - ours_first[0]) / popped if popped else float("nan"),
        "ours_frames": popped,
    }


def _js(text: str) -> str:
    return json.dumps(text)


def _ours_video(peer: Peer) -> tuple[float, int]:
    """(delay_total, frames_popped) of our peer's video jitter buffer in its latest report."""
    reports = [m for m in peer.messages if m["type"] in ("report", "end")]
    if not reports:
        return 0.0, 0
    best = next((j for j in reports[-1]["jitter"].values() if j["kind"] == "video"), None)
    return (best["delay_total"], best["frames_popped"]) if best else (0.0, 0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0)
    args = parser.parse_args()
    executable = shutil.which("chromium")
    if executable is None:
        sys.exit("chromium is not installed")
    browser = Browser(executable)
    try:
        rows = [(impaired, await call(browser, args.duration, impaired)) for impaired in (True, False)]
    finally:
        browser.close()
    print(f"{args.duration:.0f} s calls, our peer <-> headless Chromium; jitterBufferDelay per frame (W3C)")
    print(f"{'condition':34} {'Chromium (from us)':>19} {'its target':>10} {'frames':>6} {'ours (from it)':>15} {'frames':>6}")
    for impaired, r in rows:
        condition = "5% loss, 30 ms jitter, 50 ms RTT" if impaired else "loopback"
        print(f"{condition:34} {r['chromium'] * 1000:16.0f} ms {r['chromium_target'] * 1000:7.0f} ms {r['chromium_frames']:6} "
              f"{r['ours'] * 1000:12.0f} ms {r['ours_frames']:6}")


if __name__ == "__main__":
    asyncio.run(main())
