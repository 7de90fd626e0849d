"""Steps the browser tests share: befriend, call, read getStats in the page,
notices, screenshots. Each step uses only Page methods that Playwright's
Chromium pages and tests/browsers/firefox.py's Firefox pages both have."""

from __future__ import annotations

import os
import pathlib
import time

# Screenshots of the main states land here, one PNG per state and browser, so that a
# change of look shows in review: $NETCORE_ARTIFACTS, else tests/web/artifacts (git-ignored).
ARTIFACTS = pathlib.Path(os.environ.get("NETCORE_ARTIFACTS") or pathlib.Path(__file__).with_name("artifacts"))

# In-page: counters of the 1-to-1 call's RTCPeerConnection (or one mesh link).
COUNTERS_JS = """async (sessionId) => {
  const app = window.netcore;
  const pc = sessionId ? app.room.links.get(sessionId).link.pc : app.call.link.pc;
  const out = {frames: 0, samples: 0, video: [], pair: null};
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') {
      out.frames += s.framesDecoded || 0;
      out.video.push({mid: s.mid, frames: s.framesDecoded || 0, width: s.frameWidth || 0, height: s.frameHeight || 0});
    }
    if (s.type === 'inbound-rtp' && s.kind === 'audio') out.samples += s.totalSamplesReceived || 0;
    // The selected pair: the transport's in Chromium, the pair marked selected in Firefox.
    const pair = s.type === 'transport' && s.selectedCandidatePairId ? report.get(s.selectedCandidatePairId)
      : s.type === 'candidate-pair' && s.selected ? s : null;
    if (pair) {
      out.pair = {local: report.get(pair.localCandidateId).candidateType,
                  remote: report.get(pair.remoteCandidateId).candidateType};
    }
  });
  return out;
}"""

SENDER_PARAMS_JS = """() => window.netcore.call.link.pc.getSenders()
  .filter((s) => s.track && s.track.kind === 'video')
  .map((s) => s.getParameters().encodings[0])"""



def befriend(a, a_name: str, b, b_name: str) -> None:
    """a asks, b accepts in the page; both lists then show the other online."""
    a.fill("#friend-name", b_name)
    a.click("#add-friend button")
    b.click(f'#requests li[data-user="{a_name}"] .accept-request')
    a.wait_for_selector(f'#friends li[data-user="{b_name}"][data-status="online"]')
    b.wait_for_selector(f'#friends li[data-user="{a_name}"][data-status="online"]')


def open_room(owner, owner_name: str, *guests) -> None:
    """``owner`` befriends each ``(page, name)`` of ``guests`` and creates a group room, which it shows."""
    for guest, guest_name in guests:
        befriend(owner, owner_name, guest, guest_name)
    owner.click("#room-create")
    owner.wait_for_selector("#room:not([hidden])")


def invite_and_join(owner, guest, guest_name: str, owner_name: str) -> None:
    """``owner`` invites ``guest`` to its room; the guest sees who invites and joins."""
    owner.click(f'#friends li[data-user="{guest_name}"] .room-invite')
    guest.wait_for_selector("#room-invite:not([hidden])")
    assert f"{owner_name} invites you to a group call." in guest.inner_text("#room-invite-text")
    guest.click("#room-join")
    guest.wait_for_selector("#room:not([hidden])")


def call(caller, callee, callee_name: str, video: bool = True) -> None:
    """caller calls, callee accepts; returns once both pages report the call active."""
    caller.click(f'#friends li[data-user="{callee_name}"] {".call-video" if video else ".call-audio"}')
    callee.wait_for_selector("#incoming:not([hidden])")
    callee.click("#accept-call")
    caller.wait_for_selector('#call[data-state="active"]', timeout=20000)
    callee.wait_for_selector('#call[data-state="active"]', timeout=20000)


def counters(page, session_id: str | None = None) -> dict:
    return page.evaluate(COUNTERS_JS, session_id)


def assert_media_grows(pages, seconds: float = 5.0, steps: int = 2, session_ids=None) -> list[dict]:
    """Decoded video frames and received audio samples rise at every step, on every page."""
    session_ids = session_ids or [None] * len(pages)
    before = [counters(p, s) for p, s in zip(pages, session_ids)]
    for _ in range(steps):
        time.sleep(seconds / steps)  # sampling interval of a rate, not synchronisation
        after = [counters(p, s) for p, s in zip(pages, session_ids)]
        for i, (old, new) in enumerate(zip(before, after)):
            assert new["frames"] > old["frames"], f"page {i}: video frames stalled: {old} -> {new}"
            assert new["samples"] > old["samples"], f"page {i}: audio samples stalled: {old} -> {new}"
        before = after
    return before


def expect_notice(page, text: str, error: bool | None = None) -> None:
    """Wait until the page's notice line contains ``text`` (earlier notices may still show)."""
    page.wait_for_function("(text) => { const n = document.getElementById('notice');"
                           " return !n.hidden && n.textContent.includes(text); }", arg=text, timeout=10000)
    if error is not None:
        assert (page.get_attribute("#notice", "class") == "error") is error


def expect_no_notice(page) -> None:
    """The notice line is gone (the state it described has passed)."""
    page.wait_for_selector("#notice", state="hidden", timeout=2000)


def keep_notices(page) -> None:
    """Notices stay until the state changes: a test of state-driven clearing must not
    be passed by the few seconds after which every notice goes by itself."""
    page.evaluate("() => { window.netcore.notices.ms = {info: 600000, error: 600000}; }")


def screenshot(page, name: str, full_page: bool = False) -> pathlib.Path:
    """Save the page (the viewport, or all of it) as ARTIFACTS/<name>.png and return the path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def open_stats(page) -> None:
    """Open the call's stats panel (closed until asked for)."""
    if page.get_attribute("#stats-toggle", "aria-expanded") != "true":
        page.click("#stats-toggle")
    page.wait_for_selector("#stats")


STATS_ROWS_JS = """() => [...document.querySelectorAll('#stats-tracks tbody tr')].map((tr) => ({
  direction: tr.dataset.direction, kind: tr.dataset.kind, role: tr.dataset.role,
  cells: [...tr.cells].map((td) => td.textContent)}))"""


def stats_rows(page) -> list[dict]:
    """The stats panel's track rows: direction, kind, role and the cells
    (track, codec, resolution, fps, bitrate, lost, rtt)."""
    return page.evaluate(STATS_ROWS_JS)


def wait_stats_row(page, direction: str, role: str, contains: str = "", timeout: float = 15000) -> None:
    """Until the panel has a row for that track whose cells contain ``contains``."""
    page.wait_for_function(f"""(arg) => ({STATS_ROWS_JS})().some((r) => r.direction === arg.direction
        && r.role === arg.role && r.cells.join(' ').includes(arg.contains))""",
                           arg={"direction": direction, "role": role, "contains": contains}, timeout=timeout)
