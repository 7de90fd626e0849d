"""Offer/answer against the real browsers, both ways: headless Chromium and
Firefox ESR offer audio, simulcast video and a data channel and take our
answer; they answer our offer.  The browsers' own transceiver state is the
referee.  (``capture.py`` runs the same steps to refresh the corpus.)"""

from __future__ import annotations

import pytest

from netcore.sdp import parse
from tests.conftest import require_program

from .capture import browser_answer, browser_offer, open_page, served_page
from .test_browser_pairs import check_answer

PROGRAMS = {"chromium": "chromium", "firefox": "firefox-esr"}


@pytest.fixture(params=sorted(PROGRAMS))
def browser(request):
    require_program(PROGRAMS[request.param])
    return request.param


async def test_browser_takes_our_answer_to_its_offer(browser):
    with served_page() as url:
        async with open_page(browser, url) as page:
            offer, result, state = await browser_offer(page)
    audio, video, data = result.media
    assert audio.direction == "sendrecv" and video.direction == "recvonly"
    assert video.recv_rids == ("q", "h", "f") and not data.rejected
    by_mid = {s["mid"]: s for s in state}
    assert by_mid[audio.mid]["direction"] == "sendrecv"
    assert by_mid[video.mid]["direction"] == "sendonly"
    # the browser sends with the codec and extension ids we answered
    sent = by_mid[video.mid]["send"]
    assert sent and sent[0][0] == video.recv_codecs[0].payload_type
    assert {tuple(e) for e in by_mid[video.mid]["sendExtensions"]} <= set(
        video.header_extensions
    )
    assert by_mid[video.mid]["rids"] == ["q", "h", "f"]


async def test_browser_answer_to_our_offer_negotiates(browser):
    with served_page() as url:
        async with open_page(browser, url) as page:
            offer, answer, result = await browser_answer(page)
    check_answer(parse(offer), parse(answer))
    audio, video, data = result.media
    assert audio.direction == "sendrecv" and video.direction == "sendrecv"
    assert audio.send_codecs[0].name == "opus" and not data.rejected
    assert result.bundle == ("0", "1", "2") and result.dtls_role == "server"
