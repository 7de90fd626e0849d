"""Calls that do not happen: the page says why, on both sides."""

from __future__ import annotations

from tests.web.helpers import befriend, call, expect_notice


def test_callee_declines(friends):
    alice, a_name, bob, b_name = friends
    alice.click(f'#friends li[data-user="{b_name}"] .call-audio')
    alice.wait_for_selector('#call[data-state="ringing"]')
    assert alice.is_visible("#cancel-call")
    bob.wait_for_selector("#incoming:not([hidden])")
    assert f"{a_name} is calling (audio)" in bob.inner_text("#incoming-text")
    bob.click("#decline-call")
    alice.wait_for_selector("#call", state="hidden")
    expect_notice(alice, f"{b_name} declined the call.", error=True)
    assert bob.is_hidden("#incoming")


def test_callee_busy(friends, open_user, names):
    alice, a_name, bob, b_name = friends
    c_name = names("carol")
    carol = open_user(c_name)
    befriend(carol, c_name, bob, b_name)
    call(alice, bob, b_name, video=False)
    carol.wait_for_selector(f'#friends li[data-user="{b_name}"][data-status="busy"]')
    # A busy friend cannot be called from the list, and the button says why.
    for kind in ("call-audio", "call-video"):
        button = f'#friends li[data-user="{b_name}"] .{kind}'
        assert not carol.is_enabled(button)
        assert carol.get_attribute(button, "title") == f"{b_name} is in another call."
    # A call that still goes out (presence not yet seen) gets the server's 486 as a sentence.
    carol.evaluate("(name) => { window.netcore.startCall(name, ['audio']); }", b_name)
    expect_notice(carol, f"{b_name} is busy.")
    assert carol.is_hidden("#call")
    assert bob.is_hidden("#incoming")
    assert bob.get_attribute("#call", "data-state") == "active"
    alice.click("#hangup")
    bob.wait_for_selector("#call", state="hidden")


def test_caller_cancels(friends):
    alice, a_name, bob, b_name = friends
    alice.click(f'#friends li[data-user="{b_name}"] .call-video')
    bob.wait_for_selector("#incoming:not([hidden])")
    alice.click("#cancel-call")
    expect_notice(alice, f"Call to {b_name} cancelled.")
    bob.wait_for_selector("#incoming", state="hidden")
    expect_notice(bob, f"{a_name} cancelled the call.")


def test_callee_offline(friends):
    alice, a_name, bob, b_name = friends
    bob.click("#logout")
    alice.wait_for_selector(f'#friends li[data-user="{b_name}"][data-status="offline"]')
    assert not alice.is_enabled(f'#friends li[data-user="{b_name}"] .call-audio')
    alice.evaluate("(name) => { window.netcore.startCall(name, ['audio']); }", b_name)
    expect_notice(alice, f"{b_name} is offline or unavailable.")
    assert alice.is_hidden("#call")


def test_login_and_register_errors_are_explained(open_user, names, browser, up):
    name = names("dave")
    open_user(name)
    page = browser.new_context().new_page()
    try:
        page.goto(up.url)
        page.fill("#username", name)
        page.fill("#password", "not-the-password")
        page.click("#login-button")
        # Next to the form that caused them, not in a notice elsewhere.
        page.wait_for_function("() => document.getElementById('login-error').textContent"
                               " === 'Wrong username or password.'")
        page.fill("#password", "password-" + name)
        page.click("#register-button")
        page.wait_for_function("() => document.getElementById('login-error').textContent"
                               " === 'That username is taken.'")
        assert page.is_hidden("#app")
        assert page.is_hidden("#notice")
    finally:
        page.context.close()


def test_denied_camera_is_explained(friends):
    alice, a_name, bob, b_name = friends
    # This browser grants media through the fake UI; make getUserMedia refuse the way a user would.
    alice.evaluate("""() => { navigator.mediaDevices.getUserMedia = async () => {
        throw new DOMException('Permission denied', 'NotAllowedError'); }; }""")
    alice.click(f'#friends li[data-user="{b_name}"] .call-video')
    expect_notice(alice, "Access to the camera or microphone was denied", error=True)
    assert alice.is_hidden("#call")
    assert bob.is_hidden("#incoming")


def test_nobody_answers(friends):
    alice, a_name, bob, b_name = friends
    alice.click(f'#friends li[data-user="{b_name}"] .call-audio')
    bob.wait_for_selector("#incoming:not([hidden])")
    # The server's ring timeout (5 s in this daemon's config) ends it on both sides.
    alice.wait_for_selector("#call", state="hidden", timeout=15000)
    expect_notice(alice, f"No answer from {b_name}.", error=True)
    bob.wait_for_selector("#incoming", state="hidden")
    expect_notice(bob, f"Missed call from {a_name}.")
