"""Fixtures: one `netcore up` (signal with the page, and netcore-turn) for the
whole directory, one headless Chromium per test module and a fresh browser
context per user; Firefox ESR on its own X display where a test asks for it.

Chromium is the distribution's (/usr/bin/chromium) driven by Playwright for
Python, never a downloaded browser. Flags: /work/shared/README.md
("Headless Chromium for WebRTC tests"). Firefox ESR is driven over WebDriver
BiDi by tests/browsers/firefox.py (the same page methods as Playwright's).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import urllib.request

import shutil

import pytest
from playwright import sync_api

from tests.browsers.firefox import Firefox, Xvfb
from tests.web.helpers import befriend, keep_notices

CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required", "--disable-dev-shm-usage",
]
UP_URL = re.compile(r"netcore is up: open (http://\S+/)")
METRICS_URL = re.compile(r"metrics\s+(http://\S+/metrics) \(turn\)")
_names = itertools.count(1)
SERVICE_SECRET = "web-test-service-secret"  # signal's service link, for call servers the tests start


class Up:
    """A running `netcore up`: its page URL, TURN metrics URL and output so far."""

    def __init__(self, proc: subprocess.Popen, url: str, metrics_url: str, output: list[str], data_dir: str) -> None:
        self.proc, self.url, self.metrics_url, self.output = proc, url, metrics_url, output
        self.data_dir = data_dir  # the signal daemon's: analytics.jsonl, signal.db

    def analytics(self, event: str) -> list[dict]:
        """The signal daemon's analytics records of one kind so far."""
        try:
            with open(os.path.join(self.data_dir, "analytics.jsonl")) as fh:
                records = [json.loads(line) for line in fh if line.strip()]
        except FileNotFoundError:
            return []
        return [r for r in records if r.get("event") == event]

    def turn_metric(self, name: str, **labels: str) -> float:
        """Sum of one series of netcore-turn's Prometheus text over matching labels."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as answer:
            text = answer.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


def start_up(data_dir: str, *extra: str) -> Up:
    """Run `python -m servers.up` (what the `netcore` console script runs) on free ports."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "servers.up", "--port", "0", "--turn-port", "0", "--turn-metrics-port", "0",
         "--data-dir", data_dir, "--log-level", "warning", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    output: list[str] = []
    url = metrics = None
    for line in proc.stdout:
        output.append(line)
        if m := UP_URL.search(line):
            url = m.group(1)
        if m := METRICS_URL.search(line):
            metrics = m.group(1)
        if url and metrics:
            break
    if not (url and metrics):
        proc.kill()
        raise RuntimeError("netcore up did not start:\n" + "".join(output))
    # Keep draining its output so that the daemons never block on a full pipe.
    threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True).start()
    return Up(proc, url, metrics, output, data_dir)


@pytest.fixture(scope="session")
def up():
    with tempfile.TemporaryDirectory() as data_dir:
        # An existing signal config passed through: a short resume window, so that a user who
        # logs out shows offline within seconds (a closed socket keeps the session that long),
        # and a short ring timeout for the unanswered-call test.
        config = os.path.join(data_dir, "signal.toml")
        with open(config, "w") as fh:
            fh.write("resume_window = 2.0\nring_timeout = 5.0\n")
        running = start_up(os.path.join(data_dir, "signal"), "--signal-config", config)
        yield running
        running.proc.terminate()
        running.proc.wait(timeout=15)


def up_moving_rooms_above(tmp_path, threshold: int):
    """A `netcore up` of its own whose signal config names its call server and moves rooms above
    ``threshold`` participants there; stopped when the generator is closed."""
    config = tmp_path / "signal.toml"
    config.write_text(f'group_threshold = {threshold}\ncall_server = "127.0.0.1:7000"\nresume_window = 2.0\n'
                      f'service_secret = "{SERVICE_SECRET}"\n')
    running = start_up(str(tmp_path / "data"), "--signal-config", str(config))
    yield running
    running.proc.terminate()
    running.proc.wait(timeout=15)


@pytest.fixture
def up_with_call_server(tmp_path):
    """A second `netcore up` whose signal config names its call server and moves rooms above two."""
    yield from up_moving_rooms_above(tmp_path, 2)


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module. Not per session: while Playwright's sync API is
    started its event loop counts as running in this thread, and asyncio tests of
    other directories collected after ours would fail with 'loop already running'."""
    chromium = program("chromium")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def program(name: str) -> str:
    """The path of a browser the tests drive; missing is a broken install (bash .ci/deps)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (bash .ci/deps installs it)")
    return path


@pytest.fixture(scope="module")
def firefox():
    """One Firefox ESR per test module, on an X display of its own: headless Firefox
    cannot capture a screen, under Xvfb it can (getDisplayMedia picks the display)."""
    executable = program("firefox-esr")
    display = Xvfb(program("Xvfb"))
    try:
        browser = Firefox(executable, display=display.display)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        display.close()


def log_in(page, url: str, name: str, register: bool = True) -> None:
    """Register (or log in) ``name`` on the page at ``url`` and wait for the app.

    Its notices then stay until the state changes: on a loaded machine a check
    could otherwise come after the few seconds a notice lasts. The one test of
    that timing sets the page's own durations back.
    """
    page.goto(url)
    page.fill("#username", name)
    page.fill("#password", "password-" + name)
    page.click("#register-button" if register else "#login-button")
    page.wait_for_selector("#app:not([hidden])")
    keep_notices(page)


@pytest.fixture
def names():
    """Fresh user names per test (one daemon serves the whole session)."""
    return lambda prefix="u": f"{prefix}{os.getpid() % 1000}_{next(_names)}"


@pytest.fixture
def open_user(browser, up):
    """open_user(name) -> a logged-in Page in its own browser context (own storage, own devices)."""
    contexts = []

    def open_user(name: str, register: bool = True, url: str | None = None):
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: print(f"[{name}] page error: {exc}"))
        log_in(page, url or up.url, name, register)
        return page

    yield open_user
    for context in contexts:
        context.close()


@pytest.fixture
def open_firefox_user(firefox, up):
    """open_firefox_user(name) -> a logged-in tab of the module's Firefox; closed after the test."""
    pages = []

    def open_user(name: str, register: bool = True):
        page = firefox.new_page()
        pages.append(page)
        log_in(page, up.url, name, register)
        return page

    yield open_user
    for page in pages:
        page.close()
    if firefox.console:
        print("firefox console errors:", *firefox.console, sep="\n  ")
        firefox.console.clear()


@pytest.fixture
def friends(open_user, names):
    """Two logged-in pages whose users are friends: (alice, alice's name, bob, bob's name)."""
    a_name, b_name = names("alice"), names("bob")
    alice, bob = open_user(a_name), open_user(b_name)
    befriend(alice, a_name, bob, b_name)
    return alice, a_name, bob, b_name
