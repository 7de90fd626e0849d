"""Firefox ESR driven over WebDriver BiDi, with no geckodriver (test helper).

Firefox speaks WebDriver BiDi itself on ``--remote-debugging-port``.  A fresh
profile's ``user.js`` gives it fake camera and microphone without a
permission prompt, and ICE candidates on loopback (the only interface a test
machine may have).  Headless Firefox cannot capture a screen; on an X display
(``Xvfb`` below) it can, so screen-sharing tests run it there.

``FirefoxPage`` offers the few ``playwright.sync_api.Page`` methods the page
tests use, with the same names and meaning (``goto``, ``click``, ``fill``,
``evaluate``, ``wait_for_selector``, ``wait_for_function``, ``screenshot``
...), so that one test step runs unchanged on Chromium through Playwright and
on Firefox through this module.  Selectors are plain CSS.  Every wait is a
condition polled inside the page until a deadline, never a fixed sleep.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import pathlib
import subprocess
import tempfile
import time

from websockets.sync.client import connect

from tests.conftest import stop_process

PREFS = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.navigator.permission.fake": True,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.autoplay.default": 0,
    "media.autoplay.block-webaudio": False,
    # Keep a test browser quiet: no updates, telemetry, studies or welcome pages.
    "app.update.enabled": False,
    "app.normandy.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.aboutwelcome.enabled": False,
    "browser.startup.homepage_override.mstone": "ignore",
}

DEFAULT_TIMEOUT_MS = 10000
CLICK_ATTEMPTS = 3
CLICK_LANDED_MS = 2000  # how long a sent click may take to reach the page before it is sent again
VIEWPORT = {"width": 1280, "height": 720}  # Playwright's default, so screenshots compare


class BidiError(RuntimeError):
    """A WebDriver BiDi command failed, or a page script threw."""


class TimeoutError(BidiError):  # noqa: A001 (the name Playwright's errors carry)
    """A waited-for condition did not hold before the deadline."""


class Xvfb:
    """An X display of its own (``Xvfb -displayfd``): a free display number, chosen by Xvfb."""

    def __init__(self, executable: str = "Xvfb", size: str = "1280x800x24") -> None:
        read, write = os.pipe()
        self.process = subprocess.Popen(
            [executable, "-displayfd", str(write), "-screen", "0", size, "-nolisten", "tcp"],
            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()
        if not number:
            self.close()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"

    def close(self) -> None:
        stop_process(self.process)


def start_firefox(executable: str, prefs: dict, display: str | None = None,
                  timeout: float = 60) -> tuple[subprocess.Popen, tempfile.TemporaryDirectory, int]:
    """Firefox on a fresh profile whose ``user.js`` sets ``prefs``: its process, profile and BiDi port.

    ``display``: an X display (from ``Xvfb``) to run on, headless when None.
    """
    profile_dir = tempfile.TemporaryDirectory()
    profile = pathlib.Path(profile_dir.name)
    (profile / "user.js").write_text(
        "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items()))
    env = dict(os.environ)
    args = [executable, "--no-remote", "--profile", str(profile), "--remote-debugging-port=0"]
    if display is None:
        args.insert(1, "--headless")
    else:
        env["DISPLAY"] = display
    process = subprocess.Popen(args + ["about:blank"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Firefox writes the address it listens on into the profile.
    server_file = profile / "WebDriverBiDiServer.json"
    deadline = time.monotonic() + timeout
    while True:
        try:
            return process, profile_dir, int(json.loads(server_file.read_text())["ws_port"])
        except (OSError, ValueError, KeyError):
            if time.monotonic() > deadline or process.poll() is not None:
                stop_process(process)
                profile_dir.cleanup()
                raise RuntimeError("firefox did not start") from None
            time.sleep(0.1)  # polling a file Firefox writes once; no event to wait on


class Firefox:
    """One Firefox process and its one BiDi session; ``new_page()`` opens a tab.

    ``display``: an X display (from ``Xvfb``) to run on, headless when None.
    """

    def __init__(self, executable: str, display: str | None = None) -> None:
        self.process, self._profile, port = start_firefox(executable, PREFS, display)
        self._connection = contextlib.ExitStack()
        self._ws = self._connection.enter_context(
            connect(f"ws://127.0.0.1:{port}/session", max_size=None, open_timeout=30))
        self._ids = itertools.count(1)
        self.console: list[str] = []  # the pages' console errors and missed clicks, for failure messages
        self.command("session.new", {"capabilities": {}})
        self.command("session.subscribe", {"events": ["log.entryAdded"]})

    def command(self, method: str, params: dict, timeout: float = 60) -> dict:
        """Send one BiDi command and return its result; events met meanwhile are logged."""
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == ident:
                break
            if reply.get("method") == "log.entryAdded" and reply["params"].get("level") == "error":
                self.console.append(reply["params"].get("text", ""))
        if reply.get("type") == "error":
            raise BidiError(f"BiDi {method}: {reply.get('error')}: {reply.get('message')}")
        return reply["result"]

    def new_page(self) -> FirefoxPage:
        """A new foreground tab at Playwright's viewport (the first tab stays, so that
        closing ours never closes the window and with it the browser)."""
        context = self.command("browsingContext.create", {"type": "tab"})["context"]
        self.command("browsingContext.setViewport", {"context": context, "viewport": VIEWPORT})
        return FirefoxPage(self, context)

    def close(self) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            try:
                self.command("session.end", {}, timeout=5)
            except Exception:  # noqa: BLE001 (a browser already gone ends the session too)
                pass
            self._connection.close()
        stop_process(self.process)
        self._profile.cleanup()


class FirefoxPage:
    """One tab, with the subset of Playwright's sync ``Page`` the page tests use."""

    def __init__(self, browser: Firefox, context: str) -> None:
        self.browser = browser
        self.context = context

    # --- scripts ----------------------------------------------------------

    def _call(self, declaration: str, arg: object = None, timeout_ms: float = DEFAULT_TIMEOUT_MS,
              user_activation: bool = False) -> object:
        """Run ``declaration`` (a JS function of one JSON-decoded argument); its value through JSON."""
        result = self.browser.command("script.callFunction", {
            "functionDeclaration": declaration,
            "arguments": [{"type": "string", "value": json.dumps(arg)}],
            "target": {"context": self.context},
            "awaitPromise": True,
            "resultOwnership": "none",
            "userActivation": user_activation,
        }, timeout=timeout_ms / 1000 + 30)
        if result.get("type") == "exception":
            details = result.get("exceptionDetails", {})
            text = details.get("text") or json.dumps(details)[:2000]
            if "netcore-wait-timeout" in text:
                raise TimeoutError(text)
            raise BidiError(text)
        value = result["result"]
        return json.loads(value["value"]) if value.get("type") == "string" else None

    def evaluate(self, script: str, arg: object = None) -> object:
        """As Playwright: ``script`` is a function (called with ``arg``, awaited) or an expression."""
        return self._call(
            "async (arg) => { const v = (" + script + ");"
            " const r = typeof v === 'function' ? await v(JSON.parse(arg)) : await v;"
            " return r === undefined ? undefined : JSON.stringify(r); }", arg)

    def add_init_script(self, script: str) -> None:
        """As Playwright's: run ``script`` (a statement list) in every document this tab loads from now
        on, before the page's own scripts (BiDi's ``script.addPreloadScript``)."""
        self.browser.command("script.addPreloadScript", {
            "functionDeclaration": "() => {\n" + script + "\n}", "contexts": [self.context]})

    def wait_for_function(self, script: str, arg: object = None, timeout: float = DEFAULT_TIMEOUT_MS) -> object:
        """Poll the function ``script`` in the page until it returns a truthy value."""
        return self._call(
            "async (arg) => { const f = (" + script + "); const a = JSON.parse(arg);"
            f" const deadline = performance.now() + {int(timeout)};"
            " for (;;) { let v = false; try { v = await f(a); } catch (e) { v = false; }"
            "   if (v) return JSON.stringify(v);"
            f"   if (performance.now() > deadline) throw new Error('netcore-wait-timeout: ' + {json.dumps(script[:200])});"
            "   await new Promise((r) => setTimeout(r, 50)); } }", arg, timeout_ms=timeout)

    def wait_for_selector(self, selector: str, state: str = "visible", timeout: float = DEFAULT_TIMEOUT_MS) -> None:
        """Until an element matching ``selector`` is visible / hidden / attached / detached."""
        self.wait_for_function(_STATE_JS, {"selector": selector, "state": state}, timeout)

    # --- reading ----------------------------------------------------------

    def _element(self, selector: str, expression: str) -> object:
        return self.evaluate(
            "(sel) => { const el = document.querySelector(sel);"
            " if (!el) throw new Error('no element matches ' + sel); return " + expression + "; }", selector)

    def inner_text(self, selector: str) -> str:
        self.wait_for_selector(selector, "attached")
        return self._element(selector, "el.innerText")

    def get_attribute(self, selector: str, name: str) -> str | None:
        self.wait_for_selector(selector, "attached")
        return self.evaluate("([sel, name]) => document.querySelector(sel).getAttribute(name)", [selector, name])

    def is_visible(self, selector: str) -> bool:
        return bool(self.evaluate(_STATE_JS, {"selector": selector, "state": "visible"}))

    def is_hidden(self, selector: str) -> bool:
        return not self.is_visible(selector)

    def is_enabled(self, selector: str) -> bool:
        return self._element(selector, "!el.disabled")

    def eval_on_selector_all(self, selector: str, script: str) -> object:
        return self.evaluate("(sel) => (" + script + ")([...document.querySelectorAll(sel)])", selector)

    # --- acting -----------------------------------------------------------

    def goto(self, url: str) -> None:
        self.browser.command("browsingContext.navigate",
                             {"context": self.context, "url": url, "wait": "complete"})

    def click(self, selector: str, timeout: float = DEFAULT_TIMEOUT_MS) -> None:
        """A real pointer click at the element's centre, once it is visible and enabled.

        Through ``input.performActions``, so the page gets a user gesture (what
        ``getDisplayMedia`` requires), as from a person's mouse. The page is
        watched for the click reaching the element, and the click is sent again
        if it did not (once in several runs, a click sent just after a screen
        share stopped never reached its button); each miss is noted in
        ``browser.console`` for the test's output.
        """
        for _ in range(CLICK_ATTEMPTS):
            self.wait_for_function(
                "(sel) => { const el = document.querySelector(sel);"
                " return el && !el.disabled && el.getClientRects().length > 0; }", selector, timeout)
            node = self.browser.command("script.callFunction", {
                "functionDeclaration": _ARM_CLICK_JS,
                "arguments": [{"type": "string", "value": selector}],
                "target": {"context": self.context}, "awaitPromise": True, "resultOwnership": "none",
                "serializationOptions": {"maxDomDepth": 0},
            })["result"]
            self.browser.command("input.performActions", {"context": self.context, "actions": [{
                "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                "actions": [
                    {"type": "pointerMove", "x": 0, "y": 0,
                     "origin": {"type": "element", "element": {"sharedId": node["sharedId"]}}},
                    {"type": "pointerDown", "button": 0},
                    {"type": "pointerUp", "button": 0},
                ]}]})
            self.browser.command("input.releaseActions", {"context": self.context})
            try:
                # A new document (the click navigated) has no watch: the click landed.
                self.wait_for_function("() => !window.__netcoreClick || window.__netcoreClick.landed",
                                       timeout=CLICK_LANDED_MS)
                return
            except TimeoutError:
                self.browser.console.append(f"click on {selector} did not reach it; sent again")
        raise BidiError(f"a click on {selector} never reached it")

    def press(self, selector: str, key: str) -> None:
        """Focus the element and press one key (``Enter``, ``Escape``, ``Tab`` or a character)."""
        self._element(selector, "(el.focus(), true)")
        value = _KEYS.get(key, key)
        self.browser.command("input.performActions", {"context": self.context, "actions": [{
            "type": "key", "id": "keyboard",
            "actions": [{"type": "keyDown", "value": value}, {"type": "keyUp", "value": value}]}]})

    def fill(self, selector: str, text: str) -> None:
        self.wait_for_selector(selector)
        self.evaluate("([sel, text]) => { const el = document.querySelector(sel); el.focus(); el.value = text;"
                      " el.dispatchEvent(new Event('input', {bubbles: true}));"
                      " el.dispatchEvent(new Event('change', {bubbles: true})); }", [selector, text])

    def check(self, selector: str) -> None:
        if not self._element(selector, "el.checked"):
            self.click(selector)

    def select_option(self, selector: str, value: str) -> None:
        self.fill(selector, value)

    def screenshot(self, path: str | os.PathLike | None = None, full_page: bool = False) -> bytes:
        params = {"context": self.context}
        if full_page:
            params["origin"] = "document"
        data = base64.b64decode(self.browser.command("browsingContext.captureScreenshot", params)["data"])
        if path is not None:
            pathlib.Path(path).write_bytes(data)
        return data

    def close(self) -> None:
        self.browser.command("browsingContext.close", {"context": self.context})


# Is the element matching arg.selector in arg.state? Visible as Playwright means it: it has a box
# and is not visibility:hidden.
_STATE_JS = """(arg) => {
  const el = document.querySelector(arg.selector);
  const visible = Boolean(el) && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  switch (arg.state) {
    case 'attached': return Boolean(el);
    case 'detached': return !el;
    case 'hidden': return !visible;
    default: return visible;
  }
}"""

# Before a click: scroll the element into view and watch (in the capture phase, before any
# page handler) for a click that reaches it or a child of it.
_ARM_CLICK_JS = """(sel) => {
  const el = document.querySelector(sel);
  el.scrollIntoView({block: 'center'});
  const old = window.__netcoreClick;
  if (old) window.removeEventListener('click', old.listener, true);
  const watch = {landed: false};
  watch.listener = (e) => { if (e.target === el || el.contains(e.target)) watch.landed = true; };
  window.addEventListener('click', watch.listener, true);
  window.__netcoreClick = watch;
  return el;
}"""

# WebDriver's code points for the keys the tests press (WebDriver section 17.4.2).
_KEYS = {"Enter": "\ue007", "Escape": "\ue00c", "Tab": "\ue004"}
