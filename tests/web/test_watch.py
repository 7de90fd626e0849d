"""The watch page (`#watch/ROOM`, servers/signal/web/watch.js): a viewer that publishes nothing joins a room
on `netcore up`'s call server and shows its program full-size, with a quality menu.

A Chromium page publishes its camera enlarged to 1280x720 as three simulcast layers (rids q/h/f, 180,
360 and 720 lines); a second page, in another browser context, logs in at `?region=eu#watch/ROOM`: it
joins with that region (no registry here, so signaling keeps it on the room's call server), never
calls getUserMedia, offers receive sections only, and decodes the publisher's video and audio. Its
menu offers Auto and the heights of the layers (the slot's `heights`, from the call server); the lowest
rung brings what it decodes down to at most that height (room.quality), Auto brings it back above the
low layer (the allocator decides by the viewer's estimate), the middle rung keeps it at most that high.
In a studio the viewer shows the program, and the menu follows its one height from the card to a camera."""


from __future__ import annotations

import json
import time

import pytest

from tests.browsers.firefox import Firefox
from tests.web.conftest import log_in, program, up_moving_rooms_above
from tests.web.helpers import befriend, screenshot
from tests.web.test_sfu import WAIT, Pending, use_small_video, wait_until

pytestmark = pytest.mark.timeout(300)

LOW = 200  # lines: above the q layer (180) of a 1280x720 camera
VIEWPORT = {"width": 1280, "height": 900}

# Counts getUserMedia calls, from before the page's own scripts run.
COUNT_GUM_JS = """(() => {
  window.__getUserMedia = 0;
  const md = navigator.mediaDevices;
  const original = md.getUserMedia.bind(md);
  md.getUserMedia = (constraints) => { window.__getUserMedia += 1; return original(constraints); };
})();"""

# In the watch page: what its link decodes of the program (video and audio) and what the page shows.
WATCHED_JS = """async () => {
  const room = window.netcore.watch.room;
  if (!room || !room.link || !room.shown) return null;
  const out = {frames: 0, height: 0, width: 0, samples: 0, state: document.getElementById('watch').dataset.state,
               shown: room.shown, received: document.getElementById('watch-received').textContent,
               line: document.getElementById('watch-received').dataset.height,
               videoHeight: document.getElementById('watch-video').videoHeight,
               sdp: room.link.pc.localDescription ? room.link.pc.localDescription.sdp : '',
               getUserMedia: window.__getUserMedia};
  (await room.link.pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    if (s.kind === 'video' && s.mid === room.shown.mid) Object.assign(out, {frames: s.framesDecoded || 0, height: s.frameHeight || 0, width: s.frameWidth || 0});
    if (s.kind === 'audio') out.samples += s.totalSamplesReceived || 0;
  });
  return out;
}"""

# In the watch page: the menu's values and the heights the shown track's slot carries.
MENU_JS = """() => {
  const room = window.netcore.watch.room;
  const slot = room && room.shown && room.slots.find((s) => String(s.mid) === room.shown.mid);
  return {options: [...document.querySelectorAll('#watch-quality option')].map((o) => o.value),
          heights: slot && slot.heights ? slot.heights : []};
}"""

# In the publisher's page: the simulcast layers it sends now ([rid, height]).
LAYERS_JS = """async () => {
  const sfu = window.netcore.room && window.netcore.room.sfu;
  if (!sfu || !sfu.link) return [];
  const out = [];
  (await sfu.link.pc.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) out.push([s.rid, s.frameHeight || 0]);
  });
  return out.sort();
}"""


@pytest.fixture(scope="module")
def headless_firefox():
    """Firefox ESR headless (a viewer captures no screen, so no X display), driven over WebDriver BiDi."""
    browser = Firefox(program("firefox-esr"))
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def up_on_the_call_server(tmp_path):
    """`netcore up` whose rooms go to its call server from their second participant (threshold 1)."""
    yield from up_moving_rooms_above(tmp_path, 1)


def watched(page) -> dict:
    return page.evaluate(WATCHED_JS) or {}


def held(page, check, polls: int = 4) -> dict | Pending:
    """``check(figures)`` held in ``polls`` consecutive looks 0.5 s apart, frames growing throughout."""
    seen = []
    for _ in range(polls):
        seen.append(watched(page))
        if not seen[-1] or not check(seen[-1]):
            return Pending(seen[-1])
        time.sleep(0.5)  # polling interval of a condition
    grew = all(b["frames"] > a["frames"] for a, b in zip(seen, seen[1:]))
    return seen[-1] if grew else Pending("frames stalled", seen)


def choose(page, value: str) -> None:
    """Pick a quality in the menu, as a viewer does (a change event)."""
    page.select_option("#watch-quality", value)


def owner_invites(up, owner, owner_name: str, viewer, viewer_name: str) -> str:
    """Both log in; the owner befriends the viewer, opens a room and invites it (the invitation shown):
    the room's id. The owner's camera at 15 fps: a 720p simulcast encoder beside the viewer's decoder on
    shared cores."""
    log_in(owner, up.url, owner_name)
    log_in(viewer, up.url, viewer_name)
    owner.fill("#max-framerate", "15")
    befriend(owner, owner_name, viewer, viewer_name)
    owner.click("#room-create")
    owner.wait_for_selector("#room:not([hidden])")
    room_id = owner.get_attribute("#room", "data-room-id")
    owner.click(f'#friends li[data-user="{viewer_name}"] .room-invite')
    viewer.wait_for_selector("#room-invite:not([hidden])")
    return room_id


def receives_the_owners_camera(owner, viewer) -> None:
    """The watch page decodes video and audio, having asked for no camera or microphone and offered
    receive-only media sections; no studio: the owner's camera is what it shows; the owner sends q/h/f."""
    first = wait_until(lambda: held(viewer, lambda w: w["frames"] > 0 and w["samples"] > 0),
                       "the watch page to decode the program's video and audio", WAIT)
    assert first["getUserMedia"] == 0, first
    assert sends_nothing(first["sdp"]), first["sdp"]
    assert first["shown"]["publisher"] != "program"
    wait_until(lambda: [rid for rid, _ in owner.evaluate(LAYERS_JS)] == ["f", "h", "q"] or Pending(
        owner.evaluate(LAYERS_JS)), "the publisher to send q/h/f", WAIT)


def sends_nothing(sdp: str) -> bool:
    """Every media section of ``sdp`` receives only (or is inactive). Firefox's session level says
    ``a=sendrecv``, which the media sections override."""
    sections = sdp.split("\r\nm=")[1:]
    return bool(sections) and all("a=recvonly" in m or "a=inactive" in m for m in sections)


def lowest_rung_and_back(owner, viewer, shots: str) -> tuple[int, int]:
    """The viewer's menu offers Auto and the three layers' heights the call server has seen (180/360/720
    unless the publisher's browser adapted its capture for CPU), highest first; Auto gives more than the
    low layer, the lowest rung caps the picture at that height (and the line under it says so), Auto
    brings it back up. Returns the lowest and middle rungs."""
    assert viewer.evaluate("() => document.getElementById('watch-quality').value") == ""
    rungs = wait_until(lambda: (lambda m: m if m["heights"] and m["options"] == ["", *map(str, sorted(m["heights"], reverse=True))]
                                and len(m["heights"]) == 3 else Pending(m))(viewer.evaluate(MENU_JS)),
                       "the menu to offer the three layers' heights", WAIT)["options"]
    print("menu:", rungs)
    assert viewer.evaluate("() => document.querySelector('#watch-quality option:last-child').textContent") == f"{rungs[-1]}p"
    lowest, middle = int(rungs[-1]), int(rungs[-2])
    auto = wait_until(lambda: held(viewer, lambda w: w["height"] > LOW), "Auto to give more than the low layer", WAIT)
    print("auto:", auto["received"], "layers sent:", owner.evaluate(LAYERS_JS))
    wait_until(lambda: watched(viewer)["received"].startswith(f"Receiving {watched(viewer)['width']}\u00d7"),
               "the received line to follow what is decoded", 10)
    screenshot(viewer, f"{shots}-auto")

    started = time.monotonic()
    choose(viewer, str(lowest))
    low = wait_until(lambda: held(viewer, lambda w: 0 < w["height"] <= lowest), "the lowest rung to cap the picture", WAIT)
    print(f"{lowest}p: {low['received']} after {time.monotonic() - started:.1f} s")
    assert viewer.get_attribute("#watch", "data-quality") == str(lowest)
    wait_until(lambda: viewer.get_attribute("#watch-received", "data-height") == str(watched(viewer)["height"]),
               "the received line to say the capped height", 10)
    screenshot(viewer, f"{shots}-lowest")

    started = time.monotonic()
    choose(viewer, "")
    back = wait_until(lambda: held(viewer, lambda w: w["height"] > LOW), "Auto to bring the picture back up", WAIT)
    print(f"auto again: {back['received']} after {time.monotonic() - started:.1f} s")
    return lowest, middle


def test_the_watch_page_receives_the_program_and_its_quality_menu_caps_the_layer(browser, up_on_the_call_server,
                                                                                  names):
    up = up_on_the_call_server
    owner_name, viewer_name = names("host"), names("viewer")
    owner_context = browser.new_context(viewport=VIEWPORT)
    viewer_context = browser.new_context(viewport=VIEWPORT)
    viewer_context.add_init_script(COUNT_GUM_JS)
    sent: list[dict] = []
    try:
        owner, viewer = owner_context.new_page(), viewer_context.new_page()
        owner.on("pageerror", lambda exc: print(f"[owner] page error: {exc}"))
        viewer.on("pageerror", lambda exc: print(f"[viewer] page error: {exc}"))
        viewer.on("websocket", lambda ws: ws.on("framesent", lambda frame: sent.append(json.loads(frame))))
        room_id = owner_invites(up, owner, owner_name, viewer, viewer_name)

        # The link a viewer is given: the page logs in and goes straight to the watch view.
        log_in(viewer, f"{up.url}?region=eu#watch/{room_id}", viewer_name, register=False)
        viewer.wait_for_selector('#watch[data-state="connected"]', timeout=WAIT * 1000)
        joins = [m["payload"] for m in sent if m.get("type") == "room.join"]
        assert joins and joins[-1] == {"room_id": room_id, "region": "eu"}, joins
        assert viewer.is_hidden("#people") and viewer.is_hidden("#idle") and viewer.is_hidden("#room")
        routes = viewer.evaluate("""async () => { const { parseWatchRoute } = await import('/watch.js');
          return [parseWatchRoute('#watch/r1?region=us', '?region=eu'), parseWatchRoute('#watch/r%202', ''),
                  parseWatchRoute('#watch/', '?region=eu'), parseWatchRoute('', '?region=eu')]; }""")
        assert routes == [{"room": "r1", "region": "us"}, {"room": "r 2", "region": None}, None, None], routes
        receives_the_owners_camera(owner, viewer)
        lowest, middle = lowest_rung_and_back(owner, viewer, "watch")

        choose(viewer, str(middle))
        capped = wait_until(lambda: held(viewer, lambda w: 0 < w["height"] <= middle), "the middle rung to cap the picture", WAIT)
        print(f"{middle}p:", capped["received"])
        quality = [m["payload"] for m in sent if m.get("type") == "room.quality"]
        shown = capped["shown"]
        asked = [q.get("max_height") for q in quality]
        assert [h for i, h in enumerate(asked) if i == 0 or asked[i - 1] != h] == [None, lowest, None, middle], quality
        assert all(q["publisher"] == shown["publisher"] and q["track"] == shown["track"] for q in quality), quality

        viewer.click("#watch-leave")
        viewer.wait_for_selector("#watch", state="hidden")
        assert viewer.evaluate("() => location.hash") == "" and viewer.is_visible("#people")
        assert [m for m in sent if m.get("type") == "room.leave"], "no room.leave sent"
    finally:
        owner_context.close()
        viewer_context.close()


def test_the_watch_page_shows_a_studios_program(open_user, names):
    """A studio (docs/broadcast.md "Input manager") on `netcore up`'s call server: a viewer that follows a
    `#watch/ROOM` link while logged in (a hashchange, no reload) is given the program only and shows it,
    labelled Program: the card (640x360) at first, then the operator's camera and microphone once cut to;
    once the operator stops the studio (`studio.stop`), the owner's camera as in a room with no program."""
    owner_name, viewer_name = names("op"), names("fan")
    owner, viewer = open_user(owner_name), open_user(viewer_name)
    viewer.evaluate(COUNT_GUM_JS)
    use_small_video(owner)
    befriend(owner, owner_name, viewer, viewer_name)
    owner.click("#room-create")
    owner.wait_for_selector("#room:not([hidden])")
    owner.click("#room-studio")
    owner.wait_for_selector('#room[data-topology="sfu"][data-sfu-state="connected"]', timeout=WAIT * 1000)
    owner.wait_for_selector("#studio:not([hidden])", timeout=20000)
    room_id = owner.get_attribute("#room", "data-room-id")
    owner.click(f'#friends li[data-user="{viewer_name}"] .room-invite')
    viewer.wait_for_selector("#room-invite:not([hidden])")
    viewer.evaluate("(room) => { location.hash = `#watch/${room}`; }", room_id)
    viewer.wait_for_selector('#watch[data-state="connected"]', timeout=WAIT * 1000)
    card = wait_until(lambda: held(viewer, lambda w: w["width"] == 640), "the card in the watch page", WAIT)
    assert card["shown"]["publisher"] == "program" and viewer.inner_text("#watch-name") == "Program", card
    wait_until(lambda: (lambda m: m["options"] == ["", "360"] or Pending(m))(viewer.evaluate(MENU_JS)),
               "the menu to offer the card's one height", 20)
    owner_session = owner.evaluate("() => window.netcore.sessionId")
    owner.click(f'#studio-sources button[data-publisher="{owner_session}"]')
    owner.select_option("#studio-audio", index=2)  # no audio, the mix, then the first microphone: the owner's
    on_air = wait_until(lambda: held(viewer, lambda w: w["width"] == 320 and w["samples"] > 0),
                        "the operator's camera and microphone in the watch page", WAIT)
    assert on_air["shown"]["publisher"] == "program" and on_air["getUserMedia"] == 0, on_air
    wait_until(lambda: (lambda m: m["options"] == ["", "240"] or Pending(m))(viewer.evaluate(MENU_JS)),
               "the menu to follow the program to the camera's height", 20)
    screenshot(viewer, "watch-studio-program")
    # the operator stops the studio: the program goes off air, and the watch page falls back to the owner's
    # camera (the call server gives the viewer's slots the cameras again)
    owner.click("#studio-stop")
    owner.wait_for_selector("#studio", state="hidden", timeout=20000)
    owner.wait_for_selector("#room-studio:not([hidden])")
    camera = wait_until(lambda: held(viewer, lambda w: w["shown"]["publisher"] == owner_session and w["width"] == 320),
                        "the owner's camera in the watch page once the studio stopped", WAIT)
    assert viewer.inner_text("#watch-name") == owner_name and camera["getUserMedia"] == 0, camera
    assert viewer.get_attribute("#watch", "data-state") == "connected"  # the same connection, given other tracks


def test_firefox_watches_the_program_and_its_quality_menu_caps_the_layer(browser, headless_firefox,
                                                                           up_on_the_call_server, names):
    """The same receive-only watching with Firefox ESR as the viewer (headless, tests/browsers/firefox.py), the
    publisher in Chromium: Firefox, logged in at the viewer's link, decodes the owner's camera and microphone through the call server,
    never asks for a camera, its menu lists the three layers' heights, the lowest rung brings the
    picture down to that height and Auto back up."""
    up = up_on_the_call_server
    owner_name, viewer_name = names("host"), names("fox")
    owner_context = browser.new_context(viewport=VIEWPORT)
    viewer = headless_firefox.new_page()
    try:
        owner = owner_context.new_page()
        owner.on("pageerror", lambda exc: print(f"[owner] page error: {exc}"))
        room_id = owner_invites(up, owner, owner_name, viewer, viewer_name)
        viewer.add_init_script(COUNT_GUM_JS)
        log_in(viewer, f"{up.url}?region=eu#watch/{room_id}", viewer_name, register=False)  # the viewer's link
        viewer.wait_for_selector('#watch[data-state="connected"]', timeout=WAIT * 1000)
        assert viewer.evaluate("() => [window.netcore.watch.room.id, window.netcore.watch.room.region]") == [room_id, "eu"]
        assert viewer.is_hidden("#people") and viewer.is_hidden("#idle") and viewer.is_hidden("#room")
        receives_the_owners_camera(owner, viewer)
        lowest_rung_and_back(owner, viewer, "firefox-watch")
        viewer.click("#watch-leave")
        viewer.wait_for_selector("#watch", state="hidden")
    finally:
        owner_context.close()
        viewer.close()
        if headless_firefox.console:
            print("firefox console errors:", *headless_firefox.console, sep="\n  ")
