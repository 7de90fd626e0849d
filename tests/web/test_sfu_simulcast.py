"""Simulcast from the page: three Chromium pages on the call server (threshold 2), two publishing their
camera enlarged to 1280x720 as three layers (rids q/h/f), the third (the shaped one, below) one 320x240
layer (smaller than 480x270: no simulcast), all telling the call server how large their tiles show the others (room.quality; the viewport makes them over 360 CSS pixels high, so the full
layer is wanted). One page reaches the call server through a UDP relay made by the test whose
server-to-page direction crosses a 300 kbit/s drop-tail bottleneck (tests/sfu's Shaper: the kernel
here has no netem, and Chromium cannot be put in a namespace of its own cheaply): it gets the low
layer (about 180 lines) of both others, while each unshaped page gets the top layer the other sends
(which is the full one when the publisher's own estimate lets it send it: on a loaded machine Chromium
often stops its 720-line layer for "bandwidth"); when the limit is lifted the shaped page climbs back.
Chromium's own freeze statistics (`freezeCount`, `totalFreezesDuration` of each camera's
inbound-rtp, sampled every 200 ms in the page) show no freeze longer than 500 ms ending with a layer
switch (the wait for the new layer's first picture) or within a second after it."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import pytest

from tests.sfu.test_simulcast_daemon import Shaper
from tests.web.conftest import CHROMIUM_FLAGS, log_in, program
from tests.web.test_sfu import Pending, befriended_room, connected_and_receiving, wait_until

pytestmark = pytest.mark.timeout(480)

LOW = 200  # lines: the q layer of a 1280x720 camera is 180 (less when Chromium adapts for CPU)
TOP_HELD = 5.0  # seconds a publisher's top layer must have been sent before a subscriber must have it
VIEWPORT = {"width": 1920, "height": 1200}  # tiles over 360 CSS pixels high: room.quality allows the f layer
MAX_FREEZE = 0.5  # seconds: the longest freeze allowed near a layer switch
# A switch's freeze is the wait for the new layer's first frame: it ends where the height changes. A
# freeze that ended earlier (the page or the publisher stalled: two Chromiums per core) is not the
# switch's; one ending up to a second later might be (a broken key frame). Both sampled every 200 ms.
BEFORE, AFTER = 0.25, 1.0
# A switch forced by the publisher stopping the layer a page was on (Chromium short of bitrate stops its top
# layer at once) waits for more than the call server: it notices in three frames of the other layers (0.2 s at
# 15 frames/s) and asks for a key frame of the next layer, which Chromium sends no sooner than 300 ms after its
# last key frame request on any layer of the track (libwebrtc's minimum key frame send interval: another
# page's switch may have just asked), then a frame interval and the path. 0.84 s seen in one CI run, when
# both publishers stopped their top layer within 0.1 s of each other; 0.25-0.35 s in most.
PAUSED_FREEZE = 1.0
SAMPLE_MS = 200

# The call server's answer as this page must reach it: its candidates' port replaced by the relay's
# (an ICE-lite answer is the call server's; mesh answers pass unchanged), other addresses dropped.
THROUGH_RELAY_JS = """(port) => {
  const original = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (description) {
    if (description && description.type === 'answer' && description.sdp.includes('a=ice-lite')) {
      const lines = description.sdp.split('\\r\\n').filter((l) => !l.startsWith('a=candidate:') || l.includes(' 127.0.0.1 '))
        .map((l) => l.startsWith('a=candidate:') ? l.replace(/ 127\\.0\\.0\\.1 \\d+ typ host/, ` 127.0.0.1 ${port} typ host`) : l);
      description = { type: 'answer', sdp: lines.join('\\r\\n') };
    }
    return original.call(this, description);
  };
}"""

# Every SAMPLE_MS (Date.now(): one clock for all pages): per other participant, its camera slot's
# [height, framesDecoded, freezeCount, totalFreezesDuration]; per layer this page sends,
# [height, framesEncoded, qualityLimitationReason]; its estimate towards the call server.
SAMPLER_JS = """(interval) => {
  window.__samples = [];
  window.__sampler = setInterval(async () => {
    const sfu = window.netcore.room && window.netcore.room.sfu;
    if (!sfu || !sfu.link) return;
    const report = await sfu.link.pc.getStats();
    const byMid = new Map();
    const row = { t: Date.now(), users: {}, layers: {}, estimate: 0 };
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') byMid.set(s.mid, s);
      if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) row.layers[s.rid] = [s.frameHeight || 0, s.framesEncoded || 0, s.qualityLimitationReason];
      if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) row.estimate = s.availableOutgoingBitrate;
    });
    for (const m of sfu.members.values()) {
      const s = m.mids.camera == null ? null : byMid.get(m.mids.camera);
      if (s) row.users[m.user] = [s.frameHeight || 0, s.framesDecoded || 0, s.freezeCount || 0, s.totalFreezesDuration || 0];
    }
    window.__samples.push(row);
  }, interval);
}"""

# What the page publishes (one outbound-rtp per layer) and what it asked of the call server.
PUBLISHED_JS = """async () => {
  const sfu = window.netcore.room.sfu;
  const out = [];
  (await sfu.link.pc.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) out.push([s.rid, s.frameHeight || 0, s.qualityLimitationReason]);
  });
  const heights = [...sfu.members.values()].map((m) => m.camera.querySelector('video').getBoundingClientRect().height);
  const capture = window.netcore.room.stream.getVideoTracks()[0].getSettings();
  return { layers: out.sort(), capture: `${capture.width}x${capture.height}`, offer: sfu.link.pc.localDescription.sdp.length, requested: Object.fromEntries(sfu.requested),
           tiles: heights };
}"""


class RelayThread:
    """tests/sfu's Shaper on an event loop of its own (Playwright's sync API holds this thread)."""

    def __init__(self, server_port: int, rate: float) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.shaper = Shaper(("127.0.0.1", server_port), rate)
        self.port = asyncio.run_coroutine_threadsafe(self.shaper.start(), self.loop).result(10)

    def lift(self) -> None:
        self.loop.call_soon_threadsafe(setattr, self.shaper.bottleneck, "capacity", 1e9)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.shaper.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def media_port(up) -> int:
    for line in up.output:
        if m := re.search(r"\[sfu\] listening media=(\d+)", line):
            return int(m.group(1))
    raise AssertionError("netcore up's call server did not say its media port:\n" + "".join(up.output))


def heights(page) -> dict[str, int]:
    """The height of the camera each other participant's slot decodes now (the last sample)."""
    samples = page.evaluate("() => window.__samples.slice(-1)")
    return {u: v[0] for u, v in samples[0]["users"].items()} if samples else {}


def last_rows(pages) -> list:
    """Each page's last sample: what it receives and sends, its estimate (for failure messages)."""
    return [page.evaluate("() => window.__samples.slice(-1)") for page in pages]


def top_layer(page, seconds: float = TOP_HELD) -> int:
    """The height of the highest layer the page has sent without a break for ``seconds`` (a publisher
    short of bitrate stops its top layers; what it does not send, no subscriber can get)."""
    rows = page.evaluate(f"() => window.__samples.slice(-{round(seconds * 1000 / SAMPLE_MS) + 1})")
    tops = []
    for before, after in zip(rows, rows[1:]):
        sent = [after["layers"][rid][0] for rid in after["layers"]
                if rid in before["layers"] and after["layers"][rid][1] > before["layers"][rid][1]]
        tops.append(max(sent, default=0))
    return min(tops, default=0)


def on_top_layer(pages, users, i: int, j: int) -> bool:
    """Page ``i`` has received, for 2 s, at least the top layer page ``j`` has been sending (above the low
    one: its tile asks for more than the middle layer, so the allocator is what decides)."""
    top = top_layer(pages[j])
    return top > LOW and steady(pages[i], [users[j]], lambda h: h >= top)


def steady(page, others: list[str], check, seconds: float = 2.0) -> bool:
    """``check(height)`` held for every one of ``others`` in every sample of the last ``seconds``."""
    rows = page.evaluate(f"() => window.__samples.slice(-{round(seconds * 1000 / SAMPLE_MS)})")
    return len(rows) >= seconds * 1000 / SAMPLE_MS - 1 and all(
        u in r["users"] and r["users"][u][0] and check(r["users"][u][0]) for r in rows for u in others)


def publisher_stalled(samples: list[dict], start: float, end: float) -> bool:
    """The publisher's page encoded nothing for 0.4 s or more between ``start`` and ``end`` (seconds on
    the samples' clock): its own sampler fell behind, or no layer's framesEncoded grew. What was never
    encoded, no call server can forward."""
    rows = [r for r in samples if start - 0.4 <= r["t"] / 1000 <= end]
    for before, after in zip(rows, rows[1:]):
        span = (after["t"] - before["t"]) / 1000
        grew = any(after["layers"][rid][1] > before["layers"][rid][1]
                   for rid in after["layers"] if rid in before["layers"])
        if span >= 0.4 or (not grew and span >= 0.2):
            return True
    return False


def publisher_paused(samples: list[dict], height: int, start: float, end: float) -> bool:
    """The publisher stopped its layer of ``height`` lines between ``start`` and ``end`` (seconds on the
    samples' clock) while another of its layers went on: its framesEncoded stopped growing."""
    rows = [r for r in samples if start <= r["t"] / 1000 <= end]
    for before, after in zip(rows, rows[1:]):
        layers = {rid: (b, after["layers"][rid]) for rid, b in before["layers"].items() if rid in after["layers"]}
        stopped = any(b[0] == height and a[1] == b[1] for b, a in layers.values())
        if stopped and any(a[1] > b[1] for b, a in layers.values()):
            return True
    return False


def paused_switch(samples: list[dict], switches: list, end: float, length: float) -> bool:
    """A freeze of ``length`` s ending at ``end`` came with a switch down from a layer the publisher had just
    stopped (see PAUSED_FREEZE)."""
    return any(s - BEFORE <= end <= s + AFTER and to < was and publisher_paused(samples, was, end - length - 0.6, end)
               for s, was, to in switches)


def analyse(samples: list[dict], user: str) -> dict:
    """One camera's series: its switches (time, from, to), its freezes (end time, seconds: the
    increase of totalFreezesDuration between two samples, an upper bound of the longest freeze
    then), and the longest time between two samples that saw framesDecoded grow."""
    series = [(r["t"] / 1000, *r["users"][user]) for r in samples if user in r["users"]]
    switches, freezes, longest_stall = [], [], 0.0
    last_growth = None
    for (t0, h0, n0, c0, d0), (t1, h1, n1, c1, d1) in zip(series, series[1:]):
        if h0 and h1 and h1 != h0:
            switches.append((t1, h0, h1))
        if c1 > c0:
            freezes.append((t1, d1 - d0))
        if n1 > n0:
            if last_growth is not None:
                longest_stall = max(longest_stall, t1 - last_growth)
            last_growth = t1
    near = [d for t, d in freezes if any(s - BEFORE <= t <= s + AFTER for s, _, _ in switches)]
    return {"switches": switches, "freezes": freezes, "near": max(near, default=0.0),
            "worst": max((d for _, d in freezes), default=0.0), "stall": longest_stall}


@pytest.fixture
def browsers(browser):
    """Three Chromiums (the module's and two more): the pages of one browser share its fake camera,
    which keeps the size the first page opened it at, so no page could enlarge it for simulcast."""
    more = [browser.browser_type.launch(executable_path=program("chromium"), headless=True, args=CHROMIUM_FLAGS)
            for _ in range(2)]
    yield [browser, *more]
    for extra in more:
        extra.close()


def test_a_shaped_page_gets_the_low_layer_and_climbs_back_without_a_long_freeze(browsers, up_with_call_server, names):
    users = [names(n) for n in ("alice", "bob", "carol")]
    relay = RelayThread(media_port(up_with_call_server), 300_000)
    contexts = [b.new_context(viewport=VIEWPORT) for b in browsers]
    try:
        pages = [context.new_page() for context in contexts]
        for page, user in zip(pages, users):
            page.on("pageerror", lambda exc, user=user: print(f"[{user}] page error: {exc}"))
            log_in(page, up_with_call_server.url, user)
            page.evaluate(SAMPLER_JS, SAMPLE_MS)  # from before the room: the first switches are seen too
        for page in pages:
            page.fill("#max-framerate", "15")  # two 720p simulcast encoders and six decoders on two shared cores
        shaped = pages[2]
        # The shaped page sends one small layer: its link's queue delays what the call server sends it,
        # the key frame requests for its own camera too, so a layer it stopped would freeze at the others
        # for that queue's delay on top of the switch (0.52 s seen), which is the link's doing.
        shaped.select_option("#max-resolution", "320x240")
        shaped.evaluate(THROUGH_RELAY_JS, relay.port)
        others = befriended_room(pages, users)
        connected_and_receiving(pages, others)
        # every page publishes three layers, 1280x720 at the top, and asks for what its tiles show
        published = [wait_until(lambda: (lambda p: p if len(p["layers"]) == layers and len(p["requested"]) >= 2 else False)(
            page.evaluate(PUBLISHED_JS)), f"page {i} to publish {layers} layers and send room.quality")
            for i, (page, layers) in enumerate(zip(pages, (3, 3, 0)))]
        for p in published:
            print("published:", p)
        assert [[rid for rid, _, _ in p["layers"]] for p in published] == [["f", "h", "q"]] * 2 + [[]], published
        assert published[2]["capture"] == "320x240" and "a=simulcast" not in shaped.evaluate(
            "() => window.netcore.room.sfu.link.pc.localDescription.sdp")
        started = time.monotonic()
        # the shaped page gets the low layer of both others; the unshaped ones a higher one of each other
        wait_until(lambda: (steady(shaped, users[:2], lambda h: h <= LOW)
                            and on_top_layer(pages, users, 0, 1) and on_top_layer(pages, users, 1, 0))
                   or Pending(last_rows(pages)),
                   "the shaped page on the low layer, the others on the top layer each other sends",
                   timeout=200)  # 5-120 s seen: on a loaded machine the publishers' own estimates start low
        print(f"settled {time.monotonic() - started:.1f} s after the pages published:",
              [heights(p) for p in pages], "top layers sent:", [top_layer(p) for p in pages])
        time.sleep(4)  # it stays there (a probe may lift it for a moment: the link is tried now and then)
        rows = shaped.evaluate("() => window.__samples.slice(-20)")
        above = sum(1 for r in rows for u in users[:2] if r["users"].get(u, [0])[0] > LOW)
        print(f"shaped page: {above} of {2 * len(rows)} samples above the low layer in the 4 s after settling")
        assert above <= len(rows) // 2, rows  # most of the time on the low layer
        wait_until(lambda: steady(shaped, users[:2], lambda h: h <= LOW) or Pending(last_rows(pages)),
                   "the shaped page back on the low layer", timeout=30)
        relay.lift()
        lifted = time.monotonic()
        wait_until(lambda: steady(shaped, users[:2], lambda h: h > LOW) or Pending(last_rows(pages)),
                   "the shaped page to climb back", timeout=120)
        print(f"climbed back {time.monotonic() - lifted:.1f} s after the limit was lifted:", heights(shaped))
        time.sleep(4)  # a few seconds on the higher layer: the switch's neighbourhood is sampled
        every = [page.evaluate("() => { clearInterval(window.__sampler); return window.__samples; }") for page in pages]
        zero = min(r["t"] for samples in every for r in samples[:1])
        worst = []
        for i, (page, samples) in enumerate(zip(pages, every)):
            for row in samples:
                row["t"] -= zero
            for user in others[i]:
                figures = analyse(samples, user)
                print(f"page {i} <- {user}: switches {[(round(t, 1), a, b) for t, a, b in figures['switches']]}, "
                      f"freezes {[(round(t, 1), round(d, 3)) for t, d in figures['freezes']]}, "
                      f"longest near a switch {figures['near']:.3f} s, longest {figures['worst']:.3f} s, "
                      f"longest between decoded-frame growths {figures['stall']:.3f} s")
                if page is shaped:
                    assert figures["switches"], (user, figures)
                worst.append((figures["near"], i, user, figures["freezes"], figures["switches"]))
        # a freeze over the bound that the publisher's own stall explains is the machine's, not the switch's;
        # one at a switch the publisher forced by stopping the page's layer has PAUSED_FREEZE
        counted = []
        for near, i, user, freezes, switches in worst:
            publisher = every[users.index(user)]
            for t, d in sorted(freezes, key=lambda f: -f[1]):
                if d != near or near <= MAX_FREEZE:
                    continue
                if publisher_stalled(publisher, t - d, t):
                    print(f"page {i} <- {user}: the {d:.3f} s freeze ending at {t:.1f} s: its publisher stalled")
                elif d <= PAUSED_FREEZE and paused_switch(publisher, switches, t, d):
                    print(f"page {i} <- {user}: the {d:.3f} s freeze ending at {t:.1f} s: its publisher stopped "
                          f"the layer it was on")
                else:
                    continue
                near = max((x for _, x in freezes if x < near), default=0.0)
            counted.append((near, i, user, freezes))
        near, i, user, freezes = max(counted)
        if near > MAX_FREEZE:  # what the publisher sent around then
            at = next(t for t, d in freezes if d == near)
            publisher = every[users.index(user)]
            print("publisher around the freeze:", *[(round(r["t"] / 1000, 1), r["layers"], round(r["estimate"]))
                                                    for r in publisher if abs(r["t"] / 1000 - at) < 3], sep="\n  ")
        assert near <= MAX_FREEZE, (near, i, user, freezes)
    finally:
        for context in contexts:
            context.close()
        relay.close()
