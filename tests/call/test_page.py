"""The web page in headless Chromium and ``netcore-call`` call each other through a real
``netcore-signal``, each side calling in turn: the page decodes our video, we decode its VP8 and Opus.

Chromium is the distribution's, driven by Playwright's sync API. That API keeps an event loop
running in this thread while it is started, so users are made (with ``asyncio.run``) before the
browser starts.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time

import pytest
from playwright import sync_api

from tests.call.conftest import ROOT, Cli, environment, password, users
from tests.web.conftest import CHROMIUM_FLAGS, program

INBOUND_JS = """async () => { const out = {frames: 0, packets: 0};
  (await window.netcore.call.link.pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') out.frames += s.framesDecoded || 0;
    if (s.type === 'inbound-rtp' && s.kind === 'audio') out.packets += s.packetsReceived || 0;
  });
  return out; }"""


@contextlib.contextmanager
def page_of(http_url: str, user: str):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=program("chromium"), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(http_url)
            page.fill("#username", user)
            page.fill("#password", password(user))
            page.click("#login-button")
            page.wait_for_selector("#app:not([hidden])")
            yield page
        finally:
            browser.close()


@pytest.mark.parametrize("page_calls", [True, False], ids=["page-calls", "netcore-call-calls"])
def test_the_page_and_netcore_call_call_each_other(tmp_path, signal, names, page_calls):
    web, ours = names("web"), names("cli")
    users(signal.url, web, ours)
    http_url = signal.url.replace("ws://", "http://") + "/"
    media = ("--size", "320x240", "--fps", "15")
    with page_of(http_url, web) as page:
        page.wait_for_selector(f'#friends li[data-user="{ours}"][data-status="online"]', timeout=15000)
        if page_calls:
            cli = Cli(tmp_path, signal.url, ours, *media, "answer", "--wait", "60")
            cli.expect("waiting for a call")
            page.click(f'#friends li[data-user="{ours}"] .call-video')
        else:
            cli = Cli(tmp_path, signal.url, ours, *media, "call", web, "--duration", "8")
            page.wait_for_selector("#incoming:not([hidden])", timeout=20000)
            page.click("#accept-call")
        page.wait_for_selector('#call[data-state="active"]', timeout=20000)
        seen = {"frames": 0, "packets": 0}
        for _ in range(40):  # until the page has decoded some of our video (at most ~8 s)
            seen = page.evaluate(INBOUND_JS)
            if seen["frames"] >= 10 and seen["packets"] >= 10:
                break
            time.sleep(0.2)
        if page_calls:
            time.sleep(2)  # let our side decode for a while before the page hangs up
            page.click("#hangup")
        result = cli.finish(60)
    assert result.code == 0, result.stderr
    assert seen["frames"] >= 10 and seen["packets"] >= 10, seen  # Chromium decoded our VP8, got our Opus
    received = result.summary["received"]
    assert received["video"]["frames"] >= 10 and received["audio"]["frames"] >= 10, received
    assert result.summary["paths"] == {"send": "direct", "receive": "direct"}


def test_the_example_script_in_the_docs_calls_the_page(tmp_path, signal, names):
    """docs/peer.md's example (examples/call_the_page.py), run as a reader would: the page accepts, each
    side decodes the other's video, and the script hangs up when its time is up."""
    web, ours = names("web"), names("ex")
    users(signal.url, web, ours)
    with page_of(signal.url.replace("ws://", "http://") + "/", web) as page:
        page.wait_for_selector(f'#friends li[data-user="{ours}"][data-status="online"]', timeout=15000)
        script = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "call_the_page.py"), signal.url, ours, password(ours), web, "6"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(), cwd=tmp_path)
        try:
            page.wait_for_selector("#incoming:not([hidden])", timeout=20000)
            page.click("#accept-call")
            page.wait_for_selector('#call[data-state="active"]', timeout=20000)
            seen = {"frames": 0, "packets": 0}
            for _ in range(50):  # until the page has decoded some of the script's video (at most ~10 s)
                seen = page.evaluate(INBOUND_JS)
                if seen["frames"] >= 10 and seen["packets"] >= 10:
                    break
                time.sleep(0.2)
            out, err = script.communicate(timeout=60)
        finally:
            script.kill()
        # the script's hang-up ends the call on the page
        page.wait_for_function("document.getElementById('call').dataset.state !== 'active'", timeout=20000)
    assert script.returncode == 0, err
    assert seen["frames"] >= 10 and seen["packets"] >= 10, seen  # Chromium decoded the script's VP8 and Opus
    video, audio = map(int, re.fullmatch(rf"decoded from {web}: (\d+) video frames, (\d+) audio frames\n", out).groups())
    assert video >= 10 and audio >= 10, out
