"""The Firefox driver itself: the Page methods behave as Playwright's do."""

from __future__ import annotations

import shutil
import urllib.parse

import pytest

from tests.browsers.firefox import Firefox, TimeoutError

PAGE = """<!doctype html><title>t</title>
<input id="name"><button id="go" disabled>Go</button><p id="out" hidden>done</p>
<div style="position: relative"><button id="under">Under</button>
  <div id="cover" style="position: absolute; inset: 0; background: #ccc"></div></div>
<script>
  window.underClicks = 0;
  document.getElementById('under').addEventListener('click', () => { window.underClicks += 1; });
  document.getElementById('cover').addEventListener('click', (e) => e.target.remove());
  const go = document.getElementById('go');
  document.getElementById('name').addEventListener('input', () => { go.disabled = false; });
  go.addEventListener('click', () => {
    window.activated = navigator.userActivation.isActive;
    document.getElementById('out').hidden = false;
  });
</script>"""


@pytest.fixture(scope="module")
def page():
    executable = shutil.which("firefox-esr")
    if executable is None:
        pytest.fail("firefox-esr is not installed (bash .ci/deps installs it)")
    browser = Firefox(executable)  # headless: nothing here captures a screen
    try:
        page = browser.new_page()
        page.goto("data:text/html," + urllib.parse.quote(PAGE))
        yield page
    finally:
        browser.close()


def test_evaluate_takes_functions_and_expressions_with_any_characters(page):
    assert page.evaluate("() => 7 % 4") == 3
    assert page.evaluate("(a) => a.x * 2", {"x": 21}) == 42
    assert page.evaluate("document.title") == "t"
    assert page.evaluate("async () => { await new Promise((r) => setTimeout(r, 10)); return '%s %d'; }") == "%s %d"
    assert page.evaluate("() => undefined") is None


def test_waits_are_conditions_with_a_deadline(page):
    assert page.is_hidden("#out")
    with pytest.raises(TimeoutError):
        page.wait_for_function("() => window.never === true", timeout=300)
    with pytest.raises(TimeoutError):
        page.wait_for_selector("#out", timeout=300)
    page.wait_for_selector("#nothing-like-this", state="detached", timeout=300)


def test_click_waits_until_enabled_and_is_a_user_gesture(page):
    page.fill("#name", "x")  # enables the button
    page.click("#go")
    page.wait_for_selector("#out")
    assert page.inner_text("#out") == "done"
    assert page.evaluate("() => window.activated") is True  # what getDisplayMedia requires
    assert page.get_attribute("#go", "id") == "go"


def test_a_click_that_lands_beside_its_target_is_sent_again(page):
    # The first click meets a cover (as when the browser's sharing bar shifts the page),
    # which goes away; the click is sent again and reaches the button, once.
    page.click("#under")
    assert page.evaluate("() => [window.underClicks, Boolean(document.getElementById('cover'))]") == [1, False]
    assert page.browser.console == ["click on #under did not reach it; sent again"]
    page.browser.console.clear()


def test_screenshot_is_a_png(page, tmp_path):
    data = page.screenshot(path=tmp_path / "shot.png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "shot.png").read_bytes() == data
