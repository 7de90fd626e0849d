"""The light cards on the dark stage of a group call are legible, measured in Chromium: the "call moved"
notice's text meets WCAG AA contrast (>= 4.5:1) against its background in either colour scheme, and the
studio operator's panel has no blank band (a strip with nothing painted in it, as invisible text or a
paragraph's default margins made). The owner alone makes a room a studio: the room moves to `netcore up`'s
call server (the notice) and the operator's panel shows (the band)."""

from __future__ import annotations

import base64

from tests.web.helpers import screenshot
from tests.web.test_sfu import WAIT, use_small_video

AA_NORMAL_TEXT = 4.5  # WCAG 2.x SC 1.4.3: contrast minimum for text below 18pt (14pt bold)
BLANK_BAND_PX = 16  # taller than the panel's row gap (.5rem) plus a text line's leading: a band

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

# In-page, from a PNG screenshot of the element: the tallest run of pixel rows inside its content box
# (border and padding left out) in which every pixel is its background's, and its visible children
# (taller than a few pixels) in whose box every pixel is the background's: space that shows nothing.
BLANK_BAND_JS = """async ({selector, png}) => {
  const panel = document.querySelector(selector);
  const s = getComputedStyle(panel);
  const px = (name) => Math.ceil(parseFloat(s[name]));
  const image = new Image();
  image.src = 'data:image/png;base64,' + png;
  await image.decode();
  const canvas = document.createElement('canvas');
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext('2d');
  context.drawImage(image, 0, 0);
  const data = context.getImageData(0, 0, image.width, image.height).data;
  const at = (x, y) => data.slice(4 * (y * image.width + x), 4 * (y * image.width + x) + 3);
  const background = at(Math.floor(image.width / 2), px('borderTopWidth') + 1);  // in the top padding
  const inked = (x, y) => at(x, y).some((c, i) => Math.abs(c - background[i]) > 8);
  const blank = (x0, x1, y0, y1) => {
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (inked(x, y)) return false;
    return true;
  };
  const left = px('borderLeftWidth') + px('paddingLeft'), right = image.width - px('borderRightWidth') - px('paddingRight');
  const top = px('borderTopWidth') + px('paddingTop'), bottom = image.height - px('borderBottomWidth') - px('paddingBottom');
  let run = 0, tallest = 0, from = null;
  for (let y = top; y < bottom; y++) {
    run = blank(left, right, y, y + 1) ? run + 1 : 0;
    if (run > tallest) { tallest = run; from = y - run + 1 - top; }
  }
  const origin = panel.getBoundingClientRect();
  const empty = [...panel.children].filter((child) => {
    const r = child.getBoundingClientRect();
    if (r.width < 1 || r.height <= 4) return false;
    const x0 = Math.max(0, Math.floor(r.left - origin.left)), y0 = Math.max(0, Math.floor(r.top - origin.top));
    return blank(x0, Math.min(image.width, Math.ceil(r.right - origin.left)),
                 y0, Math.min(image.height, Math.ceil(r.bottom - origin.top)));
  }).map((child) => `${child.tagName.toLowerCase()}#${child.id}`);
  return {tallest, from, height: bottom - top, empty};
}"""


def contrast(page, selector: str) -> dict:
    return page.evaluate(CONTRAST_JS, selector)


def blank_band(page, selector: str) -> dict:
    png = page.locator(selector).screenshot()
    return page.evaluate(BLANK_BAND_JS, {"selector": selector, "png": base64.b64encode(png).decode()})


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
    assert "moved to the call server (netcore-sfu) because its owner made it a studio." in page.inner_text(
        "#room-topology")
    for scheme in ("light", "dark"):  # the page has one look; a dark theme added later is held to it too
        page.emulate_media(color_scheme=scheme)
        measured = contrast(page, "#room-topology")
        assert measured["ratio"] >= AA_NORMAL_TEXT, f"{scheme}: {measured}"
        print(f"call moved notice, {scheme}: {measured['ratio']:.2f}:1")


def test_the_studio_panel_has_no_blank_band(open_user, names):
    page = studio_alone(open_user, names)
    page.set_viewport_size({"width": 1024, "height": 768})  # the panel's status line and cut buttons on rows of their own
    page.wait_for_function("() => document.getElementById('studio-on-air').textContent.startsWith('On air')")
    screenshot(page, "chromium-studio-panel")
    band = blank_band(page, "#studio")
    assert band["empty"] == [], f"children of the studio panel that show nothing: {band}"
    assert band["tallest"] <= BLANK_BAND_PX, f"a blank band in the studio panel: {band}"
    print("studio panel, tallest blank strip:", band)
