"""The captured descriptions the SDP tests replay (``tests/sdp/corpus``)."""

from __future__ import annotations

import pathlib

from netcore.sdp.jsep import MediaIntent

CORPUS = pathlib.Path(__file__).parent / "corpus"

# What our offers to the browsers carry: audio, video in three simulcast layers, data.
OUR_OFFER_INTENTS = (
    MediaIntent.audio(),
    MediaIntent.video(simulcast=("q", "h", "f")),
    MediaIntent.data(),
)
# What we answer a browser's offer with: we take all it sends, send audio.
OUR_ANSWER_INTENTS = (
    MediaIntent.audio(),
    MediaIntent.video(direction="recvonly"),
    MediaIntent.data(),
)


def load(name: str) -> str:
    """The text of corpus file ``name``, its CRLF line ends kept (read as bytes, not as universal-newline text)."""
    return (CORPUS / name).read_bytes().decode()
