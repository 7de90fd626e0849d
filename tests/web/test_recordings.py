"""The page's Recordings: a room recorded through `netcore up`'s call server by two `netcore-call`
processes, made into files by its worker. The owner's page, open meanwhile, gets the entry when
recording.ready comes; the guest logs in with Chromium afterwards, sees the recording in the list and its
<video> plays each file from signal's port (Range requests, the strict CSP)."""

from __future__ import annotations

import asyncio
import concurrent.futures

from tests.call.conftest import Cli, make_users
from tests.record.media import ffprobe
from tests.web.helpers import screenshot
from tests.web.test_sfu import assert_growing, befriended_room, connected_and_receiving, use_small_video

SECONDS = 6
MEDIA = ("--size", "320x240", "--fps", "15", "--sync-marks")

# In-page: the first recording's <video>, what it has loaded and where it is.
VIDEO_JS = """() => {
  const v = document.querySelector('#recordings li.recording video');
  return v && {ready: v.readyState, time: v.currentTime, duration: v.duration, name: v.dataset.name,
               src: v.currentSrc, error: v.error && v.error.code};
}"""


def in_thread(coro):
    """Run a coroutine to completion off this thread (Playwright's sync API holds this one's loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def record_a_room(up, tmp_path, owner: str, guest: str) -> list[dict]:
    """Two netcore-call participants in a recorded room for SECONDS; the owner waits for recording.ready."""
    url = up.url.replace("http://", "ws://").rstrip("/")
    joined = Cli(tmp_path, url, guest, *MEDIA, "join", "invited", "--slots", "1", "--duration", str(SECONDS))
    joined.expect("waiting for an invitation")
    host = Cli(tmp_path, url, owner, *MEDIA, "join", "new", "--invite", guest, "--record-room", "--slots", "1",
               "--duration", str(SECONDS), "--wait-recording", "120")
    results = [cli.finish(180) for cli in (host, joined)]
    for result in results:
        assert result.code == 0, result.stderr
    return results[0].summary["sessions"][0]["recordings"]


def test_a_participant_sees_the_recording_and_it_plays(open_user, up, names, tmp_path):
    owner, guest = names("rowner"), names("rguest")
    in_thread(make_users(up.url.replace("http://", "ws://").rstrip("/"), owner, guest))
    # the owner's page is open while the room is recorded: the entry comes with recording.ready
    mine = open_user(owner, register=False)
    mine.wait_for_selector("#recordings-empty:not([hidden])")
    ready = record_a_room(up, tmp_path, owner, guest)
    mine.wait_for_selector("#recordings li.recording video", timeout=30000)
    assert mine.is_hidden("#recordings-empty")
    assert ready and len(ready[0]["files"]) == 2, ready
    page = open_user(guest, register=False)  # the guest was away when it was ready: listed at login
    page.wait_for_selector("#recordings li.recording video")
    assert page.is_hidden("#recordings-empty")
    listed = page.evaluate("() => window.netcore.recordings.recordings")
    assert len(listed) == 1 and listed[0]["room_id"] == ready[0]["room_id"]
    entry = listed[0]
    assert sorted(f["user"] for f in entry["files"]) == sorted([owner, guest])
    title = page.text_content("#recordings li.recording .recording-title")
    assert owner in title and guest in title
    # one button per participant's file; the second one's file plays after the first
    assert page.locator("#recordings .recording-source").count() == 2
    for index in range(2):
        button = page.locator("#recordings .recording-source").nth(index)
        name = button.get_attribute("data-name")
        button.click()
        page.wait_for_function(f"() => document.querySelector('#recordings video').dataset.name === '{name}'")
        page.evaluate("() => { const v = document.querySelector('#recordings video'); v.muted = true; v.play(); }")
        page.wait_for_function("() => { const v = document.querySelector('#recordings video');"
                               " return v.readyState >= 2 && v.currentTime > 0.3; }", timeout=30000)
        first = page.evaluate(VIDEO_JS)
        assert first["error"] is None and first["src"].startswith(up.url + "v1/recordings/" + name), first
        page.wait_for_function(f"() => document.querySelector('#recordings video').currentTime > {first['time'] + 1.0}",
                               timeout=30000)  # playing, not stuck on one frame
        played = page.evaluate(VIDEO_JS)
        location = next(f["location"] for f in entry["files"] if f["name"] == name)
        probe = ffprobe(location)
        assert abs(played["duration"] - float(probe["format"]["duration"])) <= 0.5, (played, probe)
        # seeking works: a jump near the end is served (Range) and plays from there
        target = max(0.0, played["duration"] - 1.5)
        page.evaluate(f"() => {{ document.querySelector('#recordings video').currentTime = {target}; }}")
        page.wait_for_function(f"() => {{ const v = document.querySelector('#recordings video');"
                               f" return !v.seeking && v.currentTime >= {target - 0.1} && v.readyState >= 2; }}",
                               timeout=30000)
        print(f"{name}: duration {played['duration']:.2f} s (ffprobe {float(probe['format']['duration']):.2f}),"
              f" played to {played['time']:.2f} s")
    screenshot(page, "recordings")
    # a third user's page lists nothing and cannot fetch the file
    other = open_user(names("rother"))
    other.wait_for_selector("#recordings-empty:not([hidden])")
    url = entry["files"][0]["url"]
    status = other.evaluate(f"async () => (await fetch('{url.split('?')[0]}')).status")
    assert status == 404


def test_a_room_of_pages_recorded_from_the_page_gives_files_with_their_vp8_and_opus(open_user, up, names):
    """The owner's Record button takes a mesh room to the call server; both browsers' VP8 and Opus
    are journalled there, the worker makes a file per participant, and both pages list it."""
    users = [names("precowner"), names("precguest")]
    pages = [open_user(u) for u in users]
    for page in pages:
        use_small_video(page)
    others = befriended_room(pages, users)
    assert pages[0].is_visible("#room-record") and pages[1].is_hidden("#room-record")  # the owner's only
    pages[0].click("#room-record")
    for page in pages:
        page.wait_for_selector('#room[data-recording="true"]')
    connected_and_receiving(pages, others, " on the call server, recorded")
    assert all(page.get_attribute("#room", "data-topology") == "sfu" for page in pages)
    assert_growing(pages, others, seconds=5.0)
    for page in pages:
        page.click("#room-leave")
    for page in pages:  # the room emptied: its recording ended, the worker made the files
        page.wait_for_selector("#recordings li.recording video", timeout=120000)
    listed = pages[1].evaluate("() => window.netcore.recordings.recordings")
    assert len(listed) == 1, listed
    files = {f["user"]: f for f in listed[0]["files"]}
    assert sorted(files) == sorted(users), listed
    for user, f in files.items():
        probe = ffprobe(f["location"])
        codecs = sorted(s["codec_name"] for s in probe["streams"])
        assert codecs == ["opus", "vp8"], (user, probe["streams"])
        assert float(probe["format"]["duration"]) >= 4.0, (user, probe["format"])
        print(f"{user}: {codecs}, {float(probe['format']['duration']):.2f} s")
