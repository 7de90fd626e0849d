"""The card: coded once as one VP8 key frame, from the drawn picture or an image file; a file that cannot
be read is one sentence; the daemon's flag and TOML key name the file."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from netcore.broadcast.card import CARD_NUMBER, CardSource, card_image, encode_card
from netcore.media.codecs import VideoDecoder
from netcore.media.synthetic import read_frame_number
from netcore.rtp.vp8 import vp8_is_keyframe
from servers.sfu.config import build_parser, load_settings


def decoded(frame: bytes):
    source = CardSource(frame, ssrc=5)
    source.start(0.0)
    packets = source.handle_timeout(0.0)
    assert vp8_is_keyframe(packets[0].payload) and packets[-1].marker
    [picture] = VideoDecoder().decode([p.payload for p in packets])
    return picture


def test_the_drawn_card_decodes_to_its_number():
    picture = decoded(encode_card(card_image()))
    assert (picture.width, picture.height) == (640, 360) and read_frame_number(picture) == CARD_NUMBER


def test_an_image_file_becomes_the_card_at_the_cards_size(tmp_path):
    path = tmp_path / "back-soon.png"
    rgb = np.zeros((200, 300, 3), np.uint8)
    rgb[:, :150] = (255, 0, 0)  # red left half, black right
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 300, 200, "rgb24"
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = 0, Fraction(1, 25)
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    picture = decoded(encode_card(card_image(320, 180, path=str(path))))
    assert (picture.width, picture.height) == (320, 180)
    pixels = picture.to_ndarray(format="rgb24")
    assert pixels[90, 40, 0] > 180 and pixels[90, 280, 0] < 60  # the red half on the left
    assert read_frame_number(picture) is None


def test_a_card_file_that_cannot_be_read_is_one_sentence(tmp_path):
    (tmp_path / "not.png").write_text("no picture here")
    for path in (tmp_path / "missing.png", tmp_path / "not.png"):
        with pytest.raises(OSError, match="the card image .* cannot be read"):
            card_image(path=str(path))


def test_the_call_servers_flag_and_toml_key_name_the_card(tmp_path):
    def settings(*argv: str):
        return load_settings(build_parser().parse_args(list(argv)))
    assert settings().studio_card is None
    config = tmp_path / "sfu.toml"
    config.write_text('studio-card = "/srv/card.png"\n')
    assert settings("--config", str(config)).studio_card == "/srv/card.png"
    assert settings("--config", str(config), "--studio-card", "/x.jpg").studio_card == "/x.jpg"
