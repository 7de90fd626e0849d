"""Our PeerConnection and headless Firefox ESR, each side offering in turn: media decoded both ways.

The same page and call as the Chromium test (``tests/peer/browser_call.py``),
driven over WebDriver BiDi (``tests/browsers/firefox.py``): Firefox's fake
camera and microphone; its WebDriver calls run in a worker thread, so that
this process's event loop (our peer connection, the page's server) never
waits on the browser.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.browsers.firefox import Firefox, FirefoxPage
from tests.conftest import require_program
from tests.peer.browser_call import check_media_both_ways, check_relayed, check_share_midcall, connect, turn_server
from tests.peer.browser_page import serve_page


class AsyncPage:
    """``await page.eval(expression)`` on a BiDi page, off the event loop."""

    def __init__(self, page: FirefoxPage) -> None:
        self.page = page

    async def eval(self, expression: str) -> object:
        return await asyncio.to_thread(self.page.evaluate, expression)


@pytest.fixture(scope="module")
def firefox():
    browser = Firefox(require_program("firefox-esr"))
    yield browser
    browser.close()


@contextlib.asynccontextmanager
async def firefox_page(firefox: Firefox):
    async with serve_page() as url:
        page = await asyncio.to_thread(firefox.new_page)
        try:
            await asyncio.to_thread(page.goto, url)
            yield AsyncPage(page)
        finally:
            await asyncio.to_thread(page.close)


@pytest.mark.parametrize("we_offer", [True, False], ids=["netcore-offers", "firefox-offers"])
async def test_media_both_ways_with_firefox(firefox, we_offer):
    async with firefox_page(firefox) as page:
        call = await connect(page, we_offer)
        try:
            await asyncio.wait_for(check_media_both_ways(call), 60)
        finally:
            await call.ours.close()


@pytest.mark.parametrize("we_offer", [True, False], ids=["netcore-offers", "firefox-offers"])
async def test_relay_only_through_netcore_turn_with_firefox(tmp_path, firefox, we_offer):
    with turn_server(tmp_path) as (ours, theirs):
        async with firefox_page(firefox) as page:
            call = await connect(page, we_offer, ours, theirs)
            try:
                await asyncio.wait_for(check_media_both_ways(call), 60)
                await check_relayed(call)
            finally:
                await call.ours.close()


@pytest.mark.parametrize("browser_shares", [True, False], ids=["firefox-shares", "netcore-shares"])
async def test_a_screen_share_added_mid_call_with_firefox(tmp_path, firefox, browser_shares):
    async with firefox_page(firefox) as page:
        call = await connect(page, we_offer=not browser_shares)
        try:
            await asyncio.wait_for(check_media_both_ways(call), 60)
            await asyncio.wait_for(check_share_midcall(call, browser_shares), 60)
        finally:
            await call.ours.close()
