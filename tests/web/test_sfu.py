"""Group calls through the call server: five Chromium pages (the threshold is 4) in one room on
netcore up's netcore-sfu; every page decodes every other's video and audio through it, a leaver's
tiles go and come back when it rejoins, and a shared screen is decoded by all."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.call.conftest import environment, make_users, password
from tests.web.conftest import SERVICE_SECRET, log_in
from tests.web.helpers import befriend, invite_and_join, screenshot

ROOT = str(Path(__file__).resolve().parents[2])

WAIT = 90.0  # seconds: five Chromiums and a Python call server on two shared cores

# In-page: per other participant (by user), what its tiles' receive sections decoded so far.
MEMBERS_JS = """async () => {
  const sfu = window.netcore.room && window.netcore.room.sfu;
  if (!sfu || !sfu.link) return null;
  const report = await sfu.link.pc.getStats();
  const byMid = new Map();
  report.forEach((s) => { if (s.type === 'inbound-rtp') byMid.set(s.mid, s); });
  const out = {};
  for (const m of sfu.members.values()) {
    const get = (mid) => (mid == null ? null : byMid.get(mid));
    const v = get(m.mids.camera), a = get(m.mids.audio), s = get(m.mids.screen);
    const video = m.camera.querySelector('video');
    out[m.user] = {video: v ? v.framesDecoded || 0 : 0, audio: a ? a.totalSamplesReceived || 0 : 0,
                   screen: s ? s.framesDecoded || 0 : 0, screenWidth: s ? s.frameWidth || 0 : 0,
                   tileWidth: video.videoWidth, screenShown: !m.screen.hidden};
  }
  return out;
}"""


# In-page: where the page's connection to the call server stands (for failure messages).
LINK_JS = """async () => {
  const sfu = window.netcore.room && window.netcore.room.sfu;
  if (!sfu) return null;
  const out = {state: sfu.state, retries: sfu.retries, callServer: sfu.callServer};
  const link = sfu.link;
  if (link) {
    Object.assign(out, {awaitingAnswer: link.awaitingAnswer, connection: link.pc.connectionState,
                        ice: link.pc.iceConnectionState, gathering: link.pc.iceGatheringState});
    (await link.pc.getStats()).forEach((s) => { if (s.type === 'transport') out.dtls = s.dtlsState; });
  }
  return out;
}"""


def links(pages) -> list:
    """Each page's connection to the call server: state, retries, ICE and DTLS states."""
    return [page.evaluate(LINK_JS) for page in pages]


def members(page) -> dict:
    return page.evaluate(MEMBERS_JS) or {}


def wait_until(check, what: str, timeout: float = WAIT):
    """Poll ``check`` (returns a truthy value when done) until it holds; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)  # polling interval of a condition
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last}")


def receiving(page, others: list[str], key: str = "video") -> dict | Pending:
    """The page's member figures once every one of ``others`` has frames (and audio) arriving,
    else False with what it shows (for the failure message)."""
    m = members(page)
    ok = all(u in m and m[u][key] > 0 and (key != "video" or m[u]["audio"] > 0) for u in others)
    return m if ok else Pending(m, page.inner_text("#room-status"), page.inner_text("#notice"))


class Pending:
    """A condition not met yet, with what the page showed (falsy)."""

    def __init__(self, *seen) -> None:
        self.seen = seen

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return repr(self.seen)


def assert_growing(pages, users, key: str = "video", seconds: float = 4.0) -> None:
    """Every page's figures for every other user rise over ``seconds``."""
    before = [members(p) for p in pages]
    time.sleep(seconds)  # sampling interval of a rate, not synchronisation
    after = [members(p) for p in pages]
    for i, (page, old, new) in enumerate(zip(pages, before, after)):
        for user in users[i]:
            assert new[user][key] > old[user][key], f"page {i}: {key} from {user} stalled: {old[user]} -> {new[user]}"
            if key == "video":
                assert new[user]["audio"] > old[user]["audio"], f"page {i}: audio from {user} stalled"


def befriended_room(pages, users: list[str]) -> list[list[str]]:
    """The first page befriends the others, starts a room and invites them; each joins. Returns,
    per page, the users it should receive."""
    for page, user in zip(pages[1:], users[1:]):
        befriend(pages[0], users[0], page, user)
    pages[0].click("#room-create")
    pages[0].wait_for_selector("#room:not([hidden])")
    for page, user in zip(pages[1:], users[1:]):
        invite_and_join(pages[0], page, user, users[0])
    return [[u for u in users if u != me] for me in users]


def connected_and_receiving(pages, others: list[list[str]], where: str = "") -> None:
    """Every page is connected to the call server and decodes what it should receive."""
    for i, page in enumerate(pages):
        page.wait_for_selector('#room[data-sfu-state="connected"]', timeout=WAIT * 1000)
        wait_until(lambda: receiving(page, others[i]), f"page {i} to decode {others[i]}{where}")


def use_small_video(page) -> None:
    """320x240 at 15 fps from the fake camera: five encoders and twenty decoders on two cores."""
    page.select_option("#max-resolution", "320x240")
    page.fill("#max-framerate", "15")


def test_five_pages_on_the_call_server(open_user, names):
    users = [names(n) for n in ("alice", "bob", "carol", "dave", "erin")]
    pages = [open_user(u) for u in users]
    for page in pages:
        use_small_video(page)
    owner = pages[0]
    others = befriended_room(pages, users)
    # The fifth join takes the room past the threshold: everyone moves to the call server.
    connected_and_receiving(pages, others)
    for page in pages:
        assert page.get_attribute("#room", "data-topology") == "sfu"
        assert page.evaluate("() => window.netcore.room.links.size") == 0  # the mesh links are gone
    assert_growing(pages, others)
    for i, page in enumerate(pages):
        m = members(page)
        assert all(m[u]["tileWidth"] > 0 for u in others[i]), m  # the tiles' video elements play
        names_shown = page.eval_on_selector_all('#tiles figure[data-role="camera"] .tile-name',
                                                "(ns) => ns.map((n) => n.textContent)")
        assert sorted(names_shown) == sorted(others[i])
    # The call server's active speaker (room.speaker, from the audio levels of the fake microphones'
    # beeps) is outlined on every page, the same participant everywhere (on its own page, its own tile).
    speakers = []
    for i, page in enumerate(pages):
        page.wait_for_selector("#tiles figure.speaking", timeout=20000)
        speakers.append(page.eval_on_selector_all(
            "#tiles figure.speaking", f"(fs) => fs.map((f) => f.dataset.user || {users[i]!r})"))
    assert all(len(s) == 1 for s in speakers), speakers
    # (it may change between two looks: SWITCH_HOLD is 1 s; mostly it is the same for all)
    print("active speaker as each page shows it:", [s[0] for s in speakers])
    # The stats line of each tile: layer, bitrate, loss, round trip.
    owner.click("#room-stats")
    owner.wait_for_function("""() => [...document.querySelectorAll('#tiles figure[data-role="camera"] .tile-stats')]
        .every((p) => !p.hidden && p.dataset.layer && p.textContent.includes('kbit/s') && p.textContent.includes('RTT'))""",
                            timeout=20000)
    print("the first page's tiles:", *owner.eval_on_selector_all(
        '#tiles figure[data-role="camera"] .tile-stats', "(ps) => ps.map((p) => p.textContent)"), sep="\n  ")
    screenshot(owner, "chromium-sfu-room")

    # The fifth leaves: its tiles go everywhere; it rejoins and is seen (and sees) again.
    leaver, leaver_name = pages[4], users[4]
    leaver.click("#room-leave")
    for page in pages[:4]:
        page.wait_for_selector(f'#tiles figure[data-user="{leaver_name}"]', state="detached", timeout=20000)
    leaver.wait_for_selector("#room-invite:not([hidden])")
    assert leaver.inner_text("#room-invite-text") == "You left the group call."
    leaver.click("#room-join")  # "Rejoin"
    leaver.wait_for_selector('#room[data-topology="sfu"][data-sfu-state="connected"]', timeout=WAIT * 1000)
    for i, page in enumerate(pages):
        wait_until(lambda: receiving(page, others[i]), f"page {i} to decode all four others after the rejoin")
    assert_growing(pages, others)

    # The second shares its screen: every other page shows and decodes it (the fake screen is 1280x720).
    sharer, sharer_name = pages[1], users[1]
    sharer.click("#room-share")
    sharer.wait_for_selector('#tiles figure[data-role="self-screen"]')
    viewers = [p for p in pages if p is not sharer]
    for page in viewers:
        wait_until(lambda: (lambda m: m.get(sharer_name, {}).get("screen", 0) > 0
                            and m[sharer_name]["screenShown"] and m[sharer_name]["screenWidth"] >= 640)(members(page)),
                   "the shared screen to be decoded")
    assert_growing(viewers, [[sharer_name]] * len(viewers), key="screen")
    assert_growing(viewers, [[u for u in users if u != members_of] for members_of in
                             [users[pages.index(p)] for p in viewers]])  # cameras and audio go on
    screenshot(owner, "chromium-sfu-screen")
    sharer.click("#room-share")
    for page in viewers:
        page.wait_for_selector(f'#tiles figure[data-role="screen"][data-user="{sharer_name}"]', state="hidden",
                               timeout=20000)


def local_candidate(page) -> str:
    """The type of the local candidate of the selected pair to the call server."""
    return page.evaluate("""async () => {
      const report = await window.netcore.room.sfu.link.pc.getStats();
      let type = '';
      report.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) {
          type = report.get(report.get(s.selectedCandidatePairId).localCandidateId).candidateType;
        }
      });
      return type;
    }""")


def start_call_server(up, name: str) -> subprocess.Popen:
    """A second netcore-sfu linked to ``up``'s signaling under ``name`` (returns once it listens)."""
    port = up.url.rstrip("/").rsplit(":", 1)[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "servers.sfu.main", "--listen", "127.0.0.1:0", "--name", name,
         "--signal", f"ws://127.0.0.1:{port}/v1/service", "--service-secret", SERVICE_SECRET, "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    assert line.startswith("listening"), line
    return proc


def test_the_pages_follow_their_room_to_another_call_server(open_user, up_with_call_server, names):
    """Three pages (threshold 2) on a second call server, which is SIGKILLed: signaling moves the
    room to netcore up's call server (room.moved), every page connects there and decodes both others.
    The third is relay only: its connections to both call servers go through netcore-turn."""
    users = [names(n) for n in ("alice", "bob", "carol")]
    doomed = start_call_server(up_with_call_server, "000-doomed")  # sorts first: the room goes there
    try:
        pages = [open_user(u, url=up_with_call_server.url) for u in users]
        for page in pages:
            use_small_video(page)
        pages[2].check("#relay-only")
        others = befriended_room(pages, users)
        connected_and_receiving(pages, others, " on 000-doomed")
        assert all("(000-doomed)" in page.inner_text("#room-topology") for page in pages)
        assert local_candidate(pages[2]) == "relay" and local_candidate(pages[0]) == "host"
        doomed.kill()
        killed = time.monotonic()
        resumed = []
        for i, page in enumerate(pages):
            page.wait_for_function("() => document.querySelector('#room-topology').textContent.includes("
                                   "'(127.0.0.1:7000) because its previous call server stopped answering')",
                                   timeout=20000)
            # frames decoded on the new connection (its stats start from zero)
            wait_until(lambda: receiving(page, others[i]), f"page {i} to decode both others after the move")
            resumed.append(time.monotonic() - killed)
        print(f"media from both others on every page {max(resumed):.2f} s after the kill")
        assert_growing(pages, others)
        assert local_candidate(pages[2]) == "relay"
    finally:
        doomed.kill()
        doomed.wait(timeout=15)


def test_pages_and_a_netcore_call_participant_in_one_room(open_user, up, names, tmp_path):
    """Four pages and one netcore-call (the fifth: the room goes to the call server): the pages decode
    its synthetic video and audio, and it receives every page's camera and microphone."""
    users = [names(n) for n in ("alice", "bob", "carol", "dave")]
    cli = names("cli")
    ws_url = up.url.replace("http://", "ws://").rstrip("/")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # Playwright's loop runs in this thread
        pool.submit(asyncio.run, make_users(ws_url, users[0], *users[1:], cli)).result(timeout=60)
    summary = tmp_path / "cli.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "servers.call.main", "--server", ws_url, "--user", cli, "--password", password(cli),
         "--size", "160x120", "--fps", "15", "--summary-json", str(summary),
         "join", "invited", "--slots", "8", "--duration", "50"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=environment())
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        pages = [open_user(u, register=False) for u in users]
        for page in pages:
            use_small_video(page)
        owner = pages[0]
        owner.click("#room-create")
        owner.wait_for_selector("#room:not([hidden])")
        for page, user in zip(pages[1:], users[1:]):
            invite_and_join(owner, page, user, users[0])
        owner.wait_for_selector(f'#friends li[data-user="{cli}"][data-status="online"]')
        owner.click(f'#friends li[data-user="{cli}"] .room-invite')
        for i, page in enumerate(pages):
            try:
                page.wait_for_selector('#room[data-sfu-state="connected"]', timeout=WAIT * 1000)
                wait_until(lambda: receiving(page, [u for u in users + [cli] if u != users[i]]),
                           f"page {i} to decode the three other pages and netcore-call")
            except (AssertionError, PlaywrightTimeout) as failure:
                raise AssertionError(f"{failure}; the pages' call server links: {links(pages)}") from None
        print("call server links:", links(pages))
        assert_growing(pages, [[cli]] * len(pages))
        wait_until(lambda: {u for u in users if any(f"receiving {u} through" in line for line in lines)} == set(users),
                   "netcore-call to receive every page")
        proc.wait(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
    assert proc.returncode == 0, "".join(lines)
    session = json.loads(summary.read_text())["sessions"][0]
    assert session["call_server"] == "netcore-sfu"
    received = {link["peer"]: link["received"] for link in session["links"]}
    for user in users:
        assert received[user]["video"]["frames"] > 30 and received[user]["audio"]["frames"] > 30, received[user]


def test_firefox_and_chromium_pages_on_the_call_server(open_user, firefox, up_with_call_server, names):
    """Two Chromium pages and a Firefox ESR page (threshold 2: the third join moves the room):
    each decodes both others' video and audio through the call server."""
    users = [names("alice"), names("bob"), names("fox")]
    pages = [open_user(u, url=up_with_call_server.url) for u in users[:2]]
    fox = firefox.new_page()
    try:
        log_in(fox, up_with_call_server.url, users[2])
        pages.append(fox)
        for page in pages:
            use_small_video(page)
        others = befriended_room(pages, users)
        connected_and_receiving(pages, others)
        assert_growing(pages, others)
    finally:
        fox.close()


def test_a_page_whose_answer_from_the_call_server_is_lost_connects_again(browser, up_with_call_server, names):
    """The third page's first answer from the call server (`room.media` with the sdp) is dropped on its
    way (a WebSocket route in front of the page): its connection stays without an answer until the
    page's watchdog replaces it with a new offer; then every page decodes every other (threshold 2)."""
    users = [names("alice"), names("bob"), names("carol")]
    contexts = [browser.new_context() for _ in users]
    dropped: list[str] = []

    def lose_first_answer(ws) -> None:
        server = ws.connect_to_server()

        def from_server(message) -> None:
            text = message if isinstance(message, str) else message.decode()
            if not dropped and '"room.media"' in text and '"sdp"' in text:
                dropped.append(text)
                return
            ws.send(message)

        server.on_message(from_server)
        ws.on_message(lambda message: server.send(message))

    contexts[2].route_web_socket(lambda url: True, lose_first_answer)
    try:
        pages = [context.new_page() for context in contexts]
        for page, user in zip(pages, users):
            log_in(page, up_with_call_server.url, user)
            use_small_video(page)
        others = befriended_room(pages, users)
        connected_and_receiving(pages, others)
        assert dropped, "no answer went through the route"
        state = links(pages)
        assert state[2]["retries"] == ["no answer"], state
        assert state[0]["retries"] == [] and state[1]["retries"] == [], state
        assert_growing(pages, others)
    finally:
        for context in contexts:
            context.close()
