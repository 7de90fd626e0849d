"""Our PeerConnection and headless Chromium, each side offering in turn: media decoded both ways.

Chromium runs a small page (``tests/peer/browser_page.py``) served by the
test, with its fake camera (VP8, 640x480 at 20 fps) and microphone (Opus);
SDP and candidates are exchanged through DevTools ``Runtime.evaluate`` in
this process, trickled both ways. We send ``SyntheticCamera`` video, whose
frame numbers the page reads back from the pictures Chromium decodes.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.conftest import require_program
from tests.peer.browser_call import check_media_both_ways, check_relayed, check_share_midcall, connect, turn_server
from tests.peer.browser_page import serve_page
from tests.sdp.chromium import Browser, Page


@pytest.fixture(scope="module")
def chromium():
    browser = Browser(require_program("chromium"))
    yield browser
    browser.close()


@contextlib.asynccontextmanager
async def chromium_page(chromium: Browser):
    async with serve_page() as url, Page(chromium) as page:
        await page.navigate(url)
        yield page


@pytest.mark.parametrize("we_offer", [True, False], ids=["netcore-offers", "chromium-offers"])
async def test_media_both_ways_with_chromium(chromium, we_offer):
    async with chromium_page(chromium) as page:
        call = await connect(page, we_offer)
        try:
            await asyncio.wait_for(check_media_both_ways(call), 60)
        finally:
            await call.ours.close()


@pytest.mark.parametrize("we_offer", [True, False], ids=["netcore-offers", "chromium-offers"])
async def test_relay_only_through_netcore_turn_with_chromium(tmp_path, chromium, we_offer):
    with turn_server(tmp_path) as (ours, theirs):
        async with chromium_page(chromium) as page:
            call = await connect(page, we_offer, ours, theirs)
            try:
                await asyncio.wait_for(check_media_both_ways(call), 60)
                await check_relayed(call)
            finally:
                await call.ours.close()


@pytest.mark.parametrize("browser_shares", [True, False], ids=["chromium-shares", "netcore-shares"])
async def test_a_screen_share_added_mid_call_with_chromium(tmp_path, chromium, browser_shares):
    async with chromium_page(chromium) as page:
        call = await connect(page, we_offer=not browser_shares)
        try:
            await asyncio.wait_for(check_media_both_ways(call), 60)
            await asyncio.wait_for(check_share_midcall(call, browser_shares), 60)
        finally:
            await call.ours.close()
