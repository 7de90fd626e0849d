"""What the page shows follows the state: notices go when their moment has passed,
call buttons are enabled only when a call is possible, tiles say whose they are,
empty lists say what to do. Screenshots of the main states go to the artifacts."""

from __future__ import annotations

from tests.web.helpers import (befriend, call, expect_no_notice, expect_notice, invite_and_join, open_room, open_stats,
                               screenshot, wait_stats_row)


def call_buttons_enabled(page, user: str) -> list[bool]:
    return [page.is_enabled(f'#friends li[data-user="{user}"] .{kind}') for kind in ("call-video", "call-audio")]


def test_login_page_shows_the_rules_and_no_empty_badge(browser, up, names):
    page = browser.new_context().new_page()
    try:
        page.goto(up.url)
        # The rules are there before any error; no grey pill without a session.
        assert "3 to 32 characters" in page.inner_text("#username-rule")
        assert "At least 8 characters" in page.inner_text("#password-rule")
        assert page.is_hidden("#connection")
        # Buttons no wider than the inputs above them.
        widths = page.evaluate("""() => ['username', 'login-button', 'register-button']
            .map((id) => document.getElementById(id).getBoundingClientRect())
            .map((r) => [r.left, r.right])""")
        left, right = widths[0]
        assert all(left - 1 <= a and b <= right + 1 for a, b in widths[1:]), widths
        screenshot(page, "chromium-login")
        # A failed registration is not "offline": the badge stays away, the error sits by the form.
        page.fill("#username", "x")
        page.fill("#password", "password-x")
        page.click("#register-button")
        page.wait_for_selector("#login-error")
        assert "3 to 32" in page.inner_text("#login-error")
        assert page.is_hidden("#connection")
        name = names("erin")
        page.fill("#username", name)
        page.fill("#password", "password-" + name)
        page.click("#login-button")  # not registered yet
        page.wait_for_function("() => document.getElementById('login-error').textContent.includes('Wrong')")
        assert page.is_hidden("#connection")
        # And the error goes once the login works.
        page.click("#register-button")
        page.wait_for_selector("#app:not([hidden])")
        assert page.is_hidden("#login-error")
        assert page.inner_text("#connection") == "online"
    finally:
        page.context.close()


def test_empty_states_say_what_to_do(open_user, names):
    page = open_user(names("fay"))
    assert "Add someone by their username" in page.inner_text("#friends-empty")
    assert "No pending requests" in page.inner_text("#requests-empty")
    assert "press Video call or Audio call" in page.inner_text("#idle")


def test_friend_notice_goes_when_a_call_starts_and_notices_go_by_themselves(open_user, names):
    a_name, b_name = names("alice"), names("bob")
    alice, bob = open_user(a_name), open_user(b_name)
    befriend(alice, a_name, bob, b_name)
    expect_notice(alice, f"{b_name} accepted your friend request.")
    screenshot(alice, "chromium-friends")
    # The call begins: that notice described a moment that has passed, on both sides.
    alice.click(f'#friends li[data-user="{b_name}"] .call-video')
    expect_no_notice(alice)
    bob.wait_for_selector("#incoming:not([hidden])")
    expect_no_notice(bob)
    # With the page's own timing, a notice also leaves by itself after a few seconds.
    bob.evaluate("() => { const n = window.netcore.notices; n.ms = {...n.defaults}; }")
    bob.click("#decline-call")
    expect_notice(bob, f"You declined the call from {a_name}.")
    bob.wait_for_selector("#notice", state="hidden", timeout=15000)


def test_call_notices_are_replaced_by_the_next_call(friends):
    alice, a_name, bob, b_name = friends
    # "bob declined the call." does not survive into the next call.
    alice.click(f'#friends li[data-user="{b_name}"] .call-audio')
    bob.wait_for_selector("#incoming:not([hidden])")
    bob.click("#decline-call")
    expect_notice(alice, f"{b_name} declined the call.", error=True)
    call(alice, bob, b_name)
    expect_no_notice(alice)
    # "Call with bob ended." does not sit above the next incoming call.
    alice.click("#hangup")
    expect_notice(alice, f"Call with {b_name} ended.")
    bob.wait_for_selector("#call", state="hidden")
    bob.wait_for_selector(f'#friends li[data-user="{a_name}"][data-status="online"]')
    bob.click(f'#friends li[data-user="{a_name}"] .call-video')
    alice.wait_for_selector("#incoming:not([hidden])")
    expect_no_notice(alice)
    # The incoming call is a modal: who, which media, Accept focused, Escape declines.
    assert alice.inner_text("#incoming-kind") == "Video call"
    assert alice.evaluate("() => document.activeElement.id") == "accept-call"
    alice.keyboard.press("Tab")
    assert alice.evaluate("() => document.activeElement.id") == "decline-call"
    # Backwards from Accept, focus does not reach the page behind the modal (inert).
    alice.focus("#accept-call")
    alice.keyboard.press("Shift+Tab")
    assert alice.evaluate("() => !document.querySelector('main').contains(document.activeElement)")
    alice.focus("#accept-call")
    screenshot(alice, "chromium-incoming-call")
    alice.keyboard.press("Escape")
    expect_notice(bob, f"{a_name} declined the call.", error=True)
    alice.wait_for_selector("#incoming", state="hidden")


def test_screen_error_goes_once_a_share_works(friends):
    alice, a_name, bob, b_name = friends
    call(alice, bob, b_name)
    bob.evaluate("""() => { const real = navigator.mediaDevices.getDisplayMedia.bind(navigator.mediaDevices);
        navigator.mediaDevices.getDisplayMedia = async (c) => {
            navigator.mediaDevices.getDisplayMedia = real;
            throw new DOMException('no screen', 'NotFoundError'); }; }""")
    bob.click("#share")
    expect_notice(bob, "No usable screen was found.", error=True)
    bob.click("#share")
    bob.wait_for_selector("#tile-my-screen")
    expect_no_notice(bob)
    # The sharer sees what they share, labelled; the viewer sees it large, labelled.
    assert bob.inner_text("#tile-my-screen .tile-name") == f"Your screen ({a_name} sees this)"
    alice.wait_for_selector("#tile-screen")
    assert alice.inner_text("#tile-screen .tile-name") == f"{b_name}'s screen"
    assert alice.evaluate("() => document.getElementById('call-tiles').classList.contains('has-screen')")
    alice.click("#hangup")
    bob.wait_for_selector("#call", state="hidden")


def test_call_buttons_only_when_a_call_is_possible(friends, open_user, names):
    alice, a_name, bob, b_name = friends
    c_name = names("carol")
    carol = open_user(c_name)
    befriend(alice, a_name, carol, c_name)
    assert call_buttons_enabled(alice, b_name) == [True, True]
    # While alice rings bob: no call to carol from alice, none to alice from carol.
    alice.click(f'#friends li[data-user="{b_name}"] .call-audio')
    bob.wait_for_selector("#incoming:not([hidden])")
    assert call_buttons_enabled(alice, c_name) == [False, False]
    assert alice.get_attribute(f'#friends li[data-user="{c_name}"] .call-audio', "title") == \
        "You are already calling someone."
    assert call_buttons_enabled(bob, a_name) == [False, False]  # answer or decline first
    assert not alice.is_enabled("#room-create")
    # In the call: still none; and alice, busy now, cannot be called by carol.
    bob.click("#accept-call")
    alice.wait_for_selector('#call[data-state="active"]', timeout=20000)
    carol.wait_for_selector(f'#friends li[data-user="{a_name}"][data-status="busy"]')
    assert call_buttons_enabled(carol, a_name) == [False, False]
    assert call_buttons_enabled(alice, c_name) == [False, False]
    assert alice.get_attribute(f'#friends li[data-user="{c_name}"] .call-audio', "title") == \
        "Hang up the current call first."
    # Over: possible again, everywhere.
    alice.click("#hangup")
    bob.wait_for_selector("#call", state="hidden")
    assert call_buttons_enabled(alice, c_name) == [True, True]
    carol.wait_for_selector(f'#friends li[data-user="{a_name}"][data-status="online"]')
    assert call_buttons_enabled(carol, a_name) == [True, True]
    # Offline: not callable.
    carol.click("#logout")
    alice.wait_for_selector(f'#friends li[data-user="{c_name}"][data-status="offline"]')
    assert call_buttons_enabled(alice, c_name) == [False, False]


def test_remove_asks_first(friends):
    alice, a_name, bob, b_name = friends
    row = f'#friends li[data-user="{b_name}"]'
    alice.click(f"{row} .remove-friend")
    assert f"Remove {b_name} from your friends?" in alice.inner_text(row)
    alice.click(f"{row} .cancel-remove")
    alice.wait_for_selector(f"{row} .call-video")
    alice.click(f"{row} .remove-friend")
    alice.click(f"{row} .confirm-remove")
    alice.wait_for_selector(row, state="detached")
    bob.wait_for_selector(f'#friends li[data-user="{a_name}"]', state="detached")
    alice.wait_for_selector("#friends-empty")


def test_tiles_carry_labels_and_the_stats_panel_opens_and_closes(friends):
    alice, a_name, bob, b_name = friends
    call(alice, bob, b_name)
    assert alice.inner_text("#tile-remote .tile-name") == b_name
    assert alice.inner_text("#tile-local .tile-name") == "You"
    assert alice.is_hidden("#tile-remote .flag.muted")
    # bob mutes and turns his camera off: alice's tile of him says so; his own tile too.
    bob.click("#mute")
    bob.click("#camera")
    alice.wait_for_selector("#tile-remote .flag.muted")
    alice.wait_for_selector("#tile-remote .flag.camera-off")
    # In place of the black picture, his initial.
    assert alice.evaluate("() => getComputedStyle(document.getElementById('tile-remote'), '::before').content") \
        == f'"{b_name[0]}"'
    assert bob.is_visible("#tile-local .flag.muted")
    bob.click("#mute")
    alice.wait_for_selector("#tile-remote .flag.muted", state="hidden")
    # The panel: closed until asked for, keyboard-operable, rows per track.
    assert alice.is_hidden("#stats")
    alice.focus("#stats-toggle")
    alice.keyboard.press("Enter")
    alice.wait_for_selector("#stats")
    assert alice.get_attribute("#stats-toggle", "aria-expanded") == "true"
    wait_stats_row(alice, "in", "camera", f"{b_name}'s camera (in)")
    wait_stats_row(alice, "out", "microphone", "Your microphone (out)")
    screenshot(alice, "chromium-call-with-stats", full_page=True)
    alice.click("#stats-toggle")
    alice.wait_for_selector("#stats", state="hidden")
    # At phone width nothing runs off the side.
    alice.set_viewport_size({"width": 390, "height": 844})
    open_stats(alice)
    assert alice.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(alice, "chromium-call-phone", full_page=True)
    alice.click("#hangup")
    bob.wait_for_selector("#call", state="hidden")


def test_ringing_shows_who_and_what_not_a_black_box(friends):
    alice, a_name, bob, b_name = friends
    alice.click(f'#friends li[data-user="{b_name}"] .call-audio')
    alice.wait_for_selector("#ringing")
    assert f"Calling {b_name}" in alice.inner_text("#ringing-text")
    assert "Audio call" in alice.inner_text("#ringing-kind")
    assert alice.is_hidden("#tile-remote")
    alice.click("#cancel-call")
    bob.wait_for_selector("#incoming", state="hidden")


def test_device_check_shows_camera_and_microphone_level_and_calls_use_the_choice(friends):
    page, a_name, bob, b_name = friends
    page.click("#device-test")
    page.wait_for_function("() => document.getElementById('device-preview').videoWidth > 0")
    page.wait_for_function("() => document.getElementById('mic-level').value > 0.01", timeout=15000)
    assert page.eval_on_selector_all("#camera-select option", "(os) => os.length") >= 2
    # Chromium's fake devices include several microphones: pick the last; the next call opens it.
    microphone = page.eval_on_selector_all("#mic-select option", "(os) => os[os.length - 1].value")
    assert microphone
    page.select_option("#mic-select", microphone)
    page.wait_for_function("(id) => window.netcore.devices.stream"
                           " && window.netcore.devices.stream.getAudioTracks()[0].getSettings().deviceId === id",
                           arg=microphone)
    page.click("#device-stop")
    page.wait_for_function("() => !document.getElementById('device-preview').srcObject")
    call(page, bob, b_name)
    assert page.evaluate("() => window.netcore.call.stream.getAudioTracks()[0].getSettings().deviceId") == microphone
    page.click("#hangup")
    bob.wait_for_selector("#call", state="hidden")


def test_group_call_tiles_are_labelled(open_user, names, up):
    a_name, b_name, c_name = names("alice"), names("bob"), names("carol")
    alice, bob, carol = open_user(a_name), open_user(b_name), open_user(c_name)
    open_room(alice, a_name, (bob, b_name), (carol, c_name))
    for guest, name in ((bob, b_name), (carol, c_name)):
        invite_and_join(alice, guest, name, a_name)
    alice.wait_for_function("() => document.querySelectorAll('#tiles figure[data-state=\"connected\"]').length === 2",
                            timeout=20000)
    labels = alice.eval_on_selector_all("#tiles figure .tile-name", "(ls) => ls.map((l) => l.textContent)")
    assert sorted(labels) == sorted(["You", b_name, c_name])
    carol.click("#room-mute")
    alice.wait_for_selector(f'#tiles figure[data-user="{c_name}"] .flag.muted')
    # Someone is outlined as speaking (the fake microphones all beep).
    alice.wait_for_selector("#tiles figure.speaking", timeout=15000)
    # In a group each friend row gains "Invite to group"; Remove still sits on the name's line.
    tops = alice.evaluate(f"""() => {{
        const li = document.querySelector('#friends li[data-user="{b_name}"]');
        return [li.querySelector('.name'), li.querySelector('.remove-friend')]
            .map((el) => Math.round(el.getBoundingClientRect().top + el.getBoundingClientRect().height / 2));
    }}""")
    assert abs(tops[0] - tops[1]) <= 4, tops
    screenshot(alice, "chromium-group-call")
    for page in (alice, bob, carol):
        page.click("#room-leave")
