"""1-to-1 calls between two real Chromium contexts, through `netcore up`."""

from __future__ import annotations

import time

from tests.web.helpers import (COUNTERS_JS, SENDER_PARAMS_JS, assert_media_grows, call, counters, expect_notice,
                               open_stats, screenshot, stats_rows, wait_stats_row)


def test_video_call_flows_both_ways_shares_screen_and_hangs_up(friends):
    alice, a_name, bob, b_name = friends
    call(alice, bob, b_name)
    # The stats panel, opened on demand: a direct path on loopback, a selected pair, an RTT,
    # and one row per track with its codec, the fake camera's size and a bitrate.
    for page in (alice, bob):
        open_stats(page)
    alice.wait_for_selector('#stats[data-path="host"]')
    assert "host udp" in alice.inner_text('#stats dd[data-stat="pair"]')
    assert "ms" in alice.inner_text('#stats dd[data-stat="rtt"]')
    assert alice.inner_text('#stats dd[data-stat="rtt"]') != "0.0 ms"
    assert_media_grows([alice, bob])
    wait_stats_row(bob, "in", "camera", "640\u00d7480")
    wait_stats_row(bob, "in", "camera", "kbit/s")
    wait_stats_row(bob, "out", "camera", "VP8")
    wait_stats_row(bob, "in", "microphone", "opus")
    wait_stats_row(bob, "out", "microphone", "opus")

    # Mute and camera off act on the local tracks (what the peer gets), and undo.
    alice.click("#mute")
    alice.click("#camera")
    assert alice.evaluate("window.netcore.call.stream.getTracks().map((t) => t.enabled)") == [False, False]
    assert alice.inner_text("#mute") == "Unmute"
    alice.click("#mute")
    alice.click("#camera")
    assert alice.evaluate("window.netcore.call.stream.getTracks().map((t) => t.enabled)") == [True, True]

    # Screen share mid-call: alice decodes a new track, 16:9 like the fake 1280x720 screen
    # (an encoder under CPU pressure may scale it down), while the call keeps running.
    camera_mids = {v["mid"] for v in counters(alice)["video"]}
    bob.click("#share")
    alice.wait_for_selector("#remote-screen:not([hidden])", timeout=15000)
    alice.wait_for_function("""() => {
        const v = document.getElementById('remote-screen');
        return v.videoHeight > 0 && Math.abs(v.videoWidth / v.videoHeight - 16 / 9) < 0.05;
    }""", timeout=15000)
    # The element showing a frame runs ahead of getStats: wait until the stats count one too.
    alice.wait_for_function(f"""async (mids) => (await ({COUNTERS_JS})(null)).video
        .some((v) => !mids.includes(v.mid) && v.frames > 0)""", arg=sorted(camera_mids), timeout=15000)
    first = counters(alice)
    time.sleep(2)  # sampling interval of a rate
    screen = [v for v in counters(alice)["video"] if v["mid"] not in camera_mids]
    assert len(screen) == 1, screen
    earlier = {v["mid"]: v["frames"] for v in first["video"]}
    assert screen[0]["frames"] > earlier[screen[0]["mid"]] > 0
    assert_media_grows([alice, bob], seconds=2, steps=1)
    # Told apart in the panel: alice's row for bob's screen, bob's for his own.
    wait_stats_row(alice, "in", "screen", "VP8")
    wait_stats_row(bob, "out", "screen", "VP8")
    assert [r["cells"][0] for r in stats_rows(alice) if r["role"] == "screen"] == [f"{b_name}'s screen (in)"]
    screenshot(alice, "chromium-call-with-screen-and-stats", full_page=True)
    screenshot(bob, "chromium-call-sharer-preview")
    bob.click("#share")  # stop sharing
    assert bob.inner_text("#share") == "Share screen"
    # The stopped share leaves the panel: one camera row out, no screen row (in or out).
    bob.wait_for_function("""() => {
        const roles = [...document.querySelectorAll('#stats-tracks tr[data-direction="out"]')].map((r) => r.dataset.role);
        return roles.sort().join() === 'camera,microphone';
    }""", timeout=15000)
    alice.wait_for_function("() => !document.querySelector('#stats-tracks tr[data-role=\"screen\"]')", timeout=15000)

    # Hang up ends it on both sides.
    alice.click("#hangup")
    alice.wait_for_selector("#call", state="hidden")
    bob.wait_for_selector("#call", state="hidden")
    expect_notice(bob, f"{a_name} hung up.")
    bob.wait_for_selector(f'#friends li[data-user="{a_name}"][data-status="online"]')


def test_relay_only_call_goes_through_netcore_turn(friends, up):
    alice, a_name, bob, b_name = friends
    to_peer = up.turn_metric("turn_relayed_packets_total", direction="to_peer")
    to_client = up.turn_metric("turn_relayed_packets_total", direction="to_client")
    allocations = up.turn_metric("turn_allocations_total")
    for page in (alice, bob):
        page.check("#relay-only")
    call(alice, bob, b_name)
    for page in (alice, bob):
        open_stats(page)
        page.wait_for_selector('#stats[data-path="relay"]')
        assert "(relay only)" in page.inner_text('#stats dd[data-stat="path"]')
    final = assert_media_grows([alice, bob])
    assert final  # both pages' selected pairs: relay on our side
    for page in (alice, bob):
        assert counters(page)["pair"]["local"] == "relay"
    assert up.turn_metric("turn_allocations_total") >= allocations + 2
    # Both directions of both allocations carried the media: far more than ICE checks alone.
    assert up.turn_metric("turn_relayed_packets_total", direction="to_peer") > to_peer + 200
    assert up.turn_metric("turn_relayed_packets_total", direction="to_client") > to_client + 200
    # Each page reported its path to the analytics (call.quality samples, every few seconds).
    call_id = alice.evaluate("() => window.netcore.call.id")
    bob.click("#hangup")
    alice.wait_for_selector("#call", state="hidden")
    quality = [r for r in up.analytics("call.quality") if r["call_id"] == call_id]
    assert sorted({r["user"] for r in quality}) == sorted([a_name, b_name])
    assert {r["path"] for r in quality} == {"relay"}


def test_capability_settings_cap_both_senders(friends):
    alice, a_name, bob, b_name = friends
    alice.select_option("#max-resolution", "320x240")
    alice.fill("#max-framerate", "10")
    alice.fill("#bandwidth", "300")
    call(alice, bob, b_name)
    # Alice caps what she sends by her settings; bob by the caps her invite carried.
    for page in (alice, bob):
        page.wait_for_function("""() => {
            const c = window.netcore.call;
            return c && c.appliedCaps && c.appliedCaps.max_resolution === '320x240';
        }""")
        page.wait_for_function(f"""() => {{
            const e = ({SENDER_PARAMS_JS})()[0];
            return e && e.maxBitrate === 300000 && e.maxFramerate === 10;
        }}""")
    # And what arrives is at most 320x240 both ways.
    for page in (alice, bob):
        page.wait_for_function("""async () => {
            const s = window.netcore.stats;
            return s && s.video.length && s.video[0].width > 0 && s.video[0].width <= 320
                && s.video[0].height <= 240;
        }""", timeout=15000)
    alice.click("#hangup")
    bob.wait_for_selector("#call", state="hidden")


def test_call_survives_a_dropped_signaling_socket(friends):
    alice, a_name, bob, b_name = friends
    call(alice, bob, b_name)
    # Drop alice's WebSocket: the page resumes the session; the media never noticed.
    alice.evaluate("() => window.netcore.client.ws.close()")
    expect_notice(alice, "Reconnected.")
    assert alice.get_attribute("#call", "data-state") == "active"
    # The banner was for the outage only; the badge is back to online.
    assert alice.is_hidden("#banner")
    assert alice.inner_text("#connection") == "online"
    assert_media_grows([alice, bob], seconds=1, steps=1)
    bob.click("#hangup")  # call.ended reaches alice over the resumed session
    alice.wait_for_selector("#call", state="hidden")
    expect_notice(alice, f"{b_name} hung up.")
