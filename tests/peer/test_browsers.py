"""Our PeerConnection and a headless browser, each side offering in turn: media decoded both ways.

Each test runs once per engine: Chromium, driven over DevTools
(``tests/sdp/chromium.py``), and Firefox ESR, driven over WebDriver BiDi
(``tests/browsers/firefox.py``), whose calls run in a worker thread so that
this process's event loop (our peer connection, the page's server) never
waits on the browser. Both load the small page of
``tests/peer/browser_page.py``, served by the test, with the browser's fake
camera and microphone; SDP and candidates are exchanged in this process and
trickled both ways (``tests/peer/browser_call.py``). We send
``SyntheticCamera`` video, whose frame numbers the page reads back from the
pictures the browser decodes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncContextManager, AsyncIterator, Callable, Iterator

import pytest

from tests.browsers.firefox import Firefox, FirefoxPage
from tests.conftest import require_program
from tests.peer.browser_call import (browser_send_estimate, check_media_both_ways, check_relayed, check_share_midcall,
                                     connect, turn_server)
from tests.peer.browser_page import serve_page
from tests.sdp.chromium import Browser, Page


class AsyncPage:
    """``await page.eval(expression)`` on a BiDi page, off the event loop."""

    def __init__(self, page: FirefoxPage) -> None:
        self.page = page

    async def eval(self, expression: str) -> object:
        return await asyncio.to_thread(self.page.evaluate, expression)


@contextlib.asynccontextmanager
async def chromium_page(chromium: Browser) -> AsyncIterator[Page]:
    async with serve_page() as url, Page(chromium) as page:
        await page.navigate(url)
        yield page


@contextlib.asynccontextmanager
async def firefox_page(firefox: Firefox) -> AsyncIterator[AsyncPage]:
    async with serve_page() as url:
        page = await asyncio.to_thread(firefox.new_page)
        try:
            await asyncio.to_thread(page.goto, url)
            yield AsyncPage(page)
        finally:
            await asyncio.to_thread(page.close)


@pytest.fixture(scope="module", params=["chromium", "firefox"])
def open_page(request) -> Iterator[Callable[[], AsyncContextManager]]:
    """One browser for the module's tests of its engine; each call opens a fresh page on the test page."""
    if request.param == "chromium":
        browser = Browser(require_program("chromium"))
        opener = chromium_page
    else:
        browser = Firefox(require_program("firefox-esr"))
        opener = firefox_page
    yield lambda: opener(browser)
    browser.close()


@pytest.mark.parametrize("we_offer", [True, False], ids=["netcore-offers", "browser-offers"])
async def test_media_both_ways(open_page, we_offer):
    async with open_page() as page:
        call = await connect(page, we_offer)
        try:
            await asyncio.wait_for(check_media_both_ways(call), 60)
        finally:
            await call.ours.close()


@pytest.mark.parametrize("we_offer", [True, False], ids=["netcore-offers", "browser-offers"])
async def test_relay_only_through_netcore_turn(tmp_path, open_page, we_offer):
    with turn_server(tmp_path) as (ours, theirs):
        async with open_page() as page:
            call = await connect(page, we_offer, ours, theirs)
            try:
                await asyncio.wait_for(check_media_both_ways(call), 60)
                await check_relayed(call)
            finally:
                await call.ours.close()


@pytest.mark.parametrize("browser_shares", [True, False], ids=["browser-shares", "netcore-shares"])
async def test_a_screen_share_added_mid_call(open_page, browser_shares):
    async with open_page() as page:
        call = await connect(page, we_offer=not browser_shares)
        try:
            await asyncio.wait_for(check_media_both_ways(call), 60)
            await asyncio.wait_for(check_share_midcall(call, browser_shares), 60)
        finally:
            await call.ours.close()


async def test_chromium_keeps_its_send_estimate_towards_us():
    """Chromium acts on our transport-wide feedback: sending its fake camera (640x480) to us on
    loopback, its estimate holds or climbs past 500 kbit/s. When the feedback named media SSRC 0,
    libwebrtc dropped it unread and backed off 20 % a second from 381 kbit/s to its 83 kbit/s
    floor within 10 s (the encoder "bandwidth"-limited at 30 kbit/s)."""
    chromium = Browser(require_program("chromium"))
    try:
        async with chromium_page(chromium) as page:
            call = await connect(page, we_offer=False)
            try:
                samples = await asyncio.wait_for(browser_send_estimate(call, 12.0), 60)
                context = call.context() + "\n" + "\n".join(f"{t:5.1f} s {s}" for t, s in samples)
                rates = [s.get("available", 0) for _, s in samples]
                # It holds or climbs (at its own pace: 8 % a second on a busy machine) and never backs
                # off as without feedback (20 % a second after 3 s, to 83 kbit/s by 10 s).
                assert rates and rates[-1] >= 500_000 and rates[-1] >= rates[0], context
                assert all(r >= 0.8 * max(rates[:i + 1]) for i, r in enumerate(rates)), context
                assert samples[-1][1].get("limitation") != "bandwidth", context
            finally:
                await call.ours.close()
    finally:
        chromium.close()
