"""Chromium and Firefox ESR in one call: each engine calls the other, relay-only
through netcore-turn, and each shares its screen with the other. Chromium runs
through Playwright, Firefox over WebDriver BiDi on an Xvfb display (headless
Firefox cannot capture a screen); the same test steps drive both."""

from __future__ import annotations

from tests.web.helpers import (assert_media_grows, befriend, call, counters, open_stats, screenshot,
                               wait_stats_row)

SCREEN_SHAPE_JS = """() => {
  const v = document.getElementById('remote-screen');
  return v.videoHeight > 0 ? v.videoWidth / v.videoHeight : 0;
}"""


def pair_up(open_user, open_firefox_user, names):
    c_name, f_name = names("chro"), names("fox")
    chromium, firefox = open_user(c_name), open_firefox_user(f_name)
    befriend(chromium, c_name, firefox, f_name)
    return chromium, c_name, firefox, f_name


def hang_up(page, other) -> None:
    page.click("#hangup")
    page.wait_for_selector("#call", state="hidden")
    other.wait_for_selector("#call", state="hidden")


def test_chromium_and_firefox_call_each_other_both_ways(open_user, open_firefox_user, names):
    chromium, c_name, firefox, f_name = pair_up(open_user, open_firefox_user, names)
    screenshot(firefox, "firefox-friends")
    # Chromium calls Firefox: VP8 and Opus both ways, labelled tiles on both sides.
    chromium.click(f'#friends li[data-user="{f_name}"] .call-video')
    firefox.wait_for_selector("#incoming:not([hidden])")
    assert firefox.inner_text("#incoming-kind") == "Video call"
    screenshot(firefox, "firefox-incoming-call")
    firefox.click("#accept-call")
    for page in (chromium, firefox):
        page.wait_for_selector('#call[data-state="active"]', timeout=20000)
    assert_media_grows([chromium, firefox])
    for page, peer in ((chromium, f_name), (firefox, c_name)):
        assert page.inner_text("#tile-remote .tile-name") == peer
        open_stats(page)
        wait_stats_row(page, "in", "camera", "VP8")
        wait_stats_row(page, "in", "microphone", "opus")
        wait_stats_row(page, "out", "camera", "VP8")
    # Mute state crosses engines (the pages' state channel).
    chromium.click("#mute")
    firefox.wait_for_selector("#tile-remote .flag.muted")
    firefox.click("#camera")
    chromium.wait_for_selector("#tile-remote .flag.camera-off")
    screenshot(firefox, "firefox-call-with-stats", full_page=True)
    hang_up(chromium, firefox)
    # Firefox calls Chromium.
    chromium.wait_for_selector(f'#friends li[data-user="{f_name}"][data-status="online"]')
    firefox.wait_for_selector(f'#friends li[data-user="{c_name}"][data-status="online"]')
    call(firefox, chromium, c_name)
    assert_media_grows([chromium, firefox])
    hang_up(firefox, chromium)


def test_relay_only_call_between_engines_goes_through_netcore_turn(open_user, open_firefox_user, names, up):
    chromium, c_name, firefox, f_name = pair_up(open_user, open_firefox_user, names)
    to_peer = up.turn_metric("turn_relayed_packets_total", direction="to_peer")
    to_client = up.turn_metric("turn_relayed_packets_total", direction="to_client")
    for page in (chromium, firefox):
        page.check("#relay-only")
    call(firefox, chromium, c_name)
    for page in (chromium, firefox):
        open_stats(page)
        page.wait_for_selector('#stats[data-path="relay"]', timeout=15000)
        assert "(relay only)" in page.inner_text('#stats dd[data-stat="path"]')
    assert_media_grows([chromium, firefox])
    for page in (chromium, firefox):
        assert counters(page)["pair"]["local"] == "relay"
    assert up.turn_metric("turn_relayed_packets_total", direction="to_peer") > to_peer + 200
    assert up.turn_metric("turn_relayed_packets_total", direction="to_client") > to_client + 200
    hang_up(chromium, firefox)


def test_each_engine_shares_its_screen_with_the_other(open_user, open_firefox_user, names):
    chromium, c_name, firefox, f_name = pair_up(open_user, open_firefox_user, names)
    call(chromium, firefox, f_name)
    # Chromium's fake screen is 1280x720; Firefox captures its 1280x800 Xvfb display.
    for sharer, viewer, sharer_name, ratio in ((chromium, firefox, c_name, 16 / 9), (firefox, chromium, f_name, 1.6)):
        sharer.click("#share")
        sharer.wait_for_selector("#tile-my-screen")
        viewer.wait_for_selector("#tile-screen", timeout=15000)
        assert viewer.inner_text("#tile-screen .tile-name") == f"{sharer_name}'s screen"
        viewer.wait_for_function(f"() => Math.abs(({SCREEN_SHAPE_JS})() - {ratio}) < 0.05", timeout=15000)
        open_stats(viewer)
        wait_stats_row(viewer, "in", "screen", "VP8")
        assert_media_grows([chromium, firefox], seconds=2, steps=1)
        screenshot(viewer, f"{'firefox' if viewer is firefox else 'chromium'}-sees-the-other-engines-screen")
        sharer.click("#share")  # stop
        viewer.wait_for_selector("#tile-screen", state="hidden", timeout=15000)
        viewer.wait_for_function("() => !document.querySelector('#stats-tracks tr[data-role=\"screen\"]')")
    hang_up(firefox, chromium)
