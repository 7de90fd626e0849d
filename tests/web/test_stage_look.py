"""The light cards on the dark stage of a group call are legible, measured in Chromium: the "call moved"
notice's text meets WCAG AA contrast (>= 4.5:1) against its background in either colour scheme. The owner
alone makes a room a studio: the room moves to `netcore up`'s call server and the notice shows."""

from __future__ import annotations

from tests.web.test_sfu import WAIT, use_small_video

AA_NORMAL_TEXT = 4.5  # WCAG 2.x SC 1.4.3: contrast minimum for text below 18pt (14pt bold)

# In-page: the WCAG contrast ratio of an element's computed text colour against the colour behind it
# (its own background composited over its ancestors' down to the first opaque one; the canvas is white).
CONTRAST_JS = """(selector) => {
  const el = document.querySelector(selector);
  const rgba = (css) => { const [r, g, b, a = 1] = css.match(/[\\d.]+/g).map(Number); return [r, g, b, a]; };
  const over = (top, under) => top.slice(0, 3).map((c, i) => top[3] * c + (1 - top[3]) * under[i]);
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const layer = rgba(getComputedStyle(e).backgroundColor);
    layers.push(layer);
    if (layer[3] === 1) break;
  }
  const background = layers.reduceRight((under, layer) => over(layer, under), [255, 255, 255]);
  const text = over(rgba(getComputedStyle(el).color), background);
  // WCAG 2.x relative luminance of an sRGB colour
  const luminance = (rgb) => rgb.map((c) => c / 255)
    .map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4))
    .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
  const [light, dark] = [luminance(text), luminance(background)].sort((x, y) => y - x);
  return {ratio: (light + 0.05) / (dark + 0.05), text, background};
}"""

def contrast(page, selector: str) -> dict:
    return page.evaluate(CONTRAST_JS, selector)


def studio_alone(open_user, names):
    """The owner's page, alone in its room, once the room is a studio: on the call server, the panel up."""
    page = open_user(names("op"))
    use_small_video(page)
    page.click("#room-create")
    page.wait_for_selector("#room:not([hidden])")
    page.click("#room-studio")
    page.wait_for_selector("#room-topology:not([hidden])", timeout=WAIT * 1000)
    page.wait_for_selector("#studio-sources button", timeout=WAIT * 1000)
    return page


def test_the_call_moved_notice_meets_wcag_aa_contrast_in_both_colour_schemes(open_user, names):
    page = studio_alone(open_user, names)
    assert "moved to the call server" in page.inner_text("#room-topology")
    for scheme in ("light", "dark"):  # the page has one look; a dark theme added later is held to it too
        page.emulate_media(color_scheme=scheme)
        measured = contrast(page, "#room-topology")
        assert measured["ratio"] >= AA_NORMAL_TEXT, f"{scheme}: {measured}"
        print(f"call moved notice, {scheme}: {measured['ratio']:.2f}:1")

