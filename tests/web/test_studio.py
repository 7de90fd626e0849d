"""The operator's view of a studio in Chromium: the room's owner presses Studio, the room goes to the
call server, every page shows what is on air and a Program tile; the owner cuts to the guest's camera
and to the card, and the Program tile decodes what the panel says is on air. The guest sees the panel
with its buttons disabled (only the operator switches)."""

from __future__ import annotations

from tests.web.conftest import CHROMIUM_FLAGS, log_in
from tests.web.conftest import program as program_path
from tests.web.helpers import befriend, invite_and_join, screenshot
from tests.web.test_sfu import WAIT, use_small_video, wait_until

# In-page: the Program tile's video (frames decoded, picture width) and the studio panel's state.
PROGRAM_JS = """async () => {
  const sfu = window.netcore.room && window.netcore.room.sfu;
  const program = sfu && sfu.members.get('program');
  if (!program || !sfu.link) return null;
  const report = await sfu.link.pc.getStats();
  let frames = 0, width = 0;
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.mid === program.mids.camera) {
      frames = s.framesDecoded || 0;
      width = s.frameWidth || 0;
    }
  });
  const panel = document.getElementById('studio');
  return {frames, width, video: panel.dataset.video, next: panel.dataset.next,
          tile: program.camera.querySelector('video').videoWidth};
}"""


def program(page) -> dict:
    return page.evaluate(PROGRAM_JS) or {}


def test_the_operator_cuts_between_sources_and_the_program_tile_follows(open_user, names):
    owner_name, guest_name = names("op"), names("cam")
    owner, guest = open_user(owner_name), open_user(guest_name)
    for page in (owner, guest):
        use_small_video(page)
    befriend(owner, owner_name, guest, guest_name)
    owner.click("#room-create")
    owner.wait_for_selector("#room:not([hidden])")
    invite_and_join(owner, guest, guest_name, owner_name)
    assert guest.is_hidden("#room-studio")  # only the owner may make the room a studio
    owner.click("#room-studio")
    for page in (owner, guest):
        page.wait_for_selector('#room[data-topology="sfu"][data-sfu-state="connected"]', timeout=WAIT * 1000)
        page.wait_for_selector("#studio:not([hidden])", timeout=20000)
    # the card is on air until the first cut, in the Program tile of both pages
    for page in (owner, guest):
        wait_until(lambda: (lambda p: p.get("video") == "card" and p.get("frames", 0) > 2 and p["width"] == 640)(
            program(page)), "the card in the Program tile")
    owner.wait_for_selector(f'#studio-sources button:has-text("{guest_name}")', timeout=20000)
    assert guest.is_disabled("#studio-sources button") and guest.is_disabled("#studio-card") and guest.is_disabled("#studio-stop")
    guest_session = guest.evaluate("() => window.netcore.sessionId")
    owner.click(f'#studio-sources button:has-text("{guest_name}")')
    wait_until(lambda: (program(owner).get("video") or "").startswith(guest_session), "the cut to the guest's camera")
    before = program(owner)["frames"]
    on_air = wait_until(lambda: (lambda p: p if p["width"] == 320 and p["frames"] > before + 10 else None)(
        program(owner)), "the guest's camera (320 wide) decoded in the Program tile")
    assert owner.get_attribute(f'#studio-sources button:has-text("{guest_name}")', "aria-pressed") == "true"
    assert guest_name in owner.inner_text("#studio-on-air")
    wait_until(lambda: (program(guest).get("video") or "").startswith(guest_session), "the guest's panel to follow")
    screenshot(owner, "chromium-studio-operator")
    owner.click("#studio-card")
    wait_until(lambda: (lambda p: p["video"] == "card" and p["width"] == 640)(program(owner)),
               "the card back on air")
    print("program tile after the cut:", on_air)



def test_a_simulcast_camera_goes_on_air_as_its_largest_layer(open_user, browser, up, names):
    """The guest's camera, enlarged to 1280x720, is sent as three simulcast layers (in a Chromium of its own:
    the pages of one browser share its fake camera at the size the first opened it): the program is its
    largest layer."""
    owner_name, guest_name = names("op"), names("cam")
    owner = open_user(owner_name)
    use_small_video(owner)
    other = browser.browser_type.launch(executable_path=program_path("chromium"), headless=True,
                                        args=CHROMIUM_FLAGS)
    try:
        guest = other.new_context().new_page()
        log_in(guest, up.url, guest_name)
        guest.fill("#max-framerate", "15")
        befriend(owner, owner_name, guest, guest_name)
        owner.click("#room-create")
        owner.wait_for_selector("#room:not([hidden])")
        invite_and_join(owner, guest, guest_name, owner_name)
        owner.click("#room-studio")
        owner.wait_for_selector(f'#studio-sources button:has-text("{guest_name}")', timeout=WAIT * 1000)
        guest.wait_for_selector('#room[data-sfu-state="connected"]', timeout=WAIT * 1000)
        layers = guest.evaluate("""() => window.netcore.room.sfu.link.pc.getSenders()
            .filter((s) => s.track && s.track.kind === 'video')[0].getParameters().encodings.length""")
        assert layers == 3
        owner.click(f'#studio-sources button:has-text("{guest_name}")')
        on_air = wait_until(lambda: (lambda p: p if p.get("width", 0) >= 640 and p["frames"] > 10 else None)(
            program(owner)), "the guest's largest layer in the Program tile", timeout=60)
        print("program tile on the simulcast camera:", on_air)
    finally:
        other.close()
