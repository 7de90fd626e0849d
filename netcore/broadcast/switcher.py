"""The program switcher (sans-IO): which source of a studio is on air, rewritten into one stream.

The program is one video and one audio stream, each with one SSRC whose
sequence numbers, timestamps and VP8 picture ids run on without a jump
whatever is on air: a subscriber of the program sees one camera that
changes picture, never a new source (no jitter-buffer reset, no decoder
restart).  The rewriting is the call server's per-subscriber
:class:`~netcore.sfu.rewrite.DownTrack`, here with the program as its
"subscriber":

* **cut** (video): the new source is *wanted*; its key frame is asked for
  (the caller sends the request, through the source's key-frame arbiter)
  and the old source stays on air until that key frame arrives, which is
  the first packet of the new source forwarded (RFC 7741: a key frame
  starts a decodable stream).  Timestamps move on by the wall time between
  the last packet of the old source and the first of the new one;
* **audio**: one source is picked and switched at once (audio frames
  decode on their own), timestamps continued the same way; ``None``: no
  audio (the stream pauses, and continues where it stopped, advanced by
  the time it was silent);
* **mix**: the audio of every microphone summed (netcore.broadcast.mixer)
  is one more audio source, picked like a microphone;
* **card**: the still of :class:`~netcore.broadcast.card.CardSource` is a
  source like a camera whose every frame is a key frame, so it goes on
  air at its next frame; a cut away from it keeps it on air until the
  camera's key frame.  The card also goes on air when the on-air camera
  leaves.

A cross-fade would need every source that may be faded to decoded all
the time (a decoder starts only at a key frame) and the program coded
again for the fade, ending in a key-frame cut all the same; the switcher
cuts (docs/broadcast.md: why).

Sources are named by ``(publisher, track)``; the program's payload types
are fixed (:data:`VIDEO_PAYLOAD_TYPE` VP8, :data:`AUDIO_PAYLOAD_TYPE`
Opus) and each source's are mapped onto them by codec name (a source in
another codec is not put on air: its packets are dropped as ``codec``).
"""

from __future__ import annotations

from dataclasses import dataclass

from netcore.broadcast.card import CardSource
from netcore.broadcast.mixer import MIX
from netcore.errors import UsageError
from netcore.rtp.packet import RtpPacket
from netcore.sfu.rewrite import DownTrack

__all__ = ["ProgramSwitcher", "SourceKey", "ProgramState", "CARD", "VIDEO_PAYLOAD_TYPE", "AUDIO_PAYLOAD_TYPE",
           "PROGRAM_CODECS"]

SourceKey = tuple[str, str]  # (publisher, track): a publication of the studio room
CARD: SourceKey = ("", "card")  # the card, as a video source
VIDEO_PAYLOAD_TYPE = 96
AUDIO_PAYLOAD_TYPE = 111
PROGRAM_CODECS = {"video": {VIDEO_PAYLOAD_TYPE: "VP8"}, "audio": {AUDIO_PAYLOAD_TYPE: "OPUS"}}
VIDEO_CLOCK, AUDIO_CLOCK = 90_000, 48_000


@dataclass(frozen=True)
class ProgramState:
    """What is on air: ``video`` (None before anything), ``next`` (a cut waiting for its key frame),
    ``audio`` (None: none)."""

    video: SourceKey | None
    next: SourceKey | None
    audio: SourceKey | None
    cuts: int

    def as_dict(self) -> dict:
        def name(key: SourceKey | None) -> dict | None:
            if key is None:
                return None
            if key in (CARD, MIX):
                return {key[1]: True}
            return {"publisher": key[0], "track": key[1]}
        return {"video": name(self.video), "next": name(self.next), "audio": name(self.audio), "cuts": self.cuts}


class ProgramSwitcher:
    """One program: its video and audio streams and what feeds them (see the module docstring)."""

    def __init__(self, video_ssrc: int, audio_ssrc: int, card: CardSource | None = None) -> None:
        self.video = DownTrack(video_ssrc, "video", VIDEO_CLOCK)
        self.audio = DownTrack(audio_ssrc, "audio", AUDIO_CLOCK)
        self.card = card
        self._kinds: dict[SourceKey, str] = {}
        self._ssrcs: dict[SourceKey, int] = {}  # each source's SSRC, from its latest packet
        self._maps = {"video": ({}, {}), "audio": ({}, {})}  # kind -> (source PT -> ours, source PT -> codec)
        self.on_air: SourceKey | None = None  # video
        self.next: SourceKey | None = None  # video wanted, its key frame not arrived
        self.audio_source: SourceKey | None = None
        self.cuts = 0  # video switches done (on the new source's key frame)
        if card is not None:
            self._kinds[CARD] = "video"
            self._ssrcs[CARD] = card.ssrc
            self._map("video", {card.payload_type: "VP8"})

    # -- sources ----------------------------------------------------------------------

    @property
    def sources(self) -> dict[SourceKey, str]:
        """Every source and its kind (the card among them, when there is one)."""
        return dict(self._kinds)

    def add_source(self, key: SourceKey, kind: str, codecs: dict[int, str]) -> None:
        """A publication of the studio (``codecs``: its payload types and codec names, upper case)."""
        if kind not in ("audio", "video"):
            raise UsageError(f"a source is audio or video, not {kind!r}")
        self._kinds[key] = kind
        self._map(kind, codecs)

    def remove_source(self, key: SourceKey, now: float) -> None:
        """A publication left: off the program; the card goes on air in place of a video source."""
        kind = self._kinds.pop(key, None)
        self._ssrcs.pop(key, None)
        if kind == "audio" and self.audio_source == key:
            self.audio_source = None
            self.audio.wanted = None
        elif kind == "video" and key in (self.on_air, self.next):
            if self.card is not None:
                self.cut(CARD, now)
            elif self.next == key:
                self.next = None
                self.video.wanted = None

    def _map(self, kind: str, codecs: dict[int, str]) -> None:
        """Map a source's payload types onto the program's by codec name (the first source to use a payload
        type for a codec keeps it)."""
        ours = {name: pt for pt, name in PROGRAM_CODECS[kind].items()}
        payload_types, names = self._maps[kind]
        for pt, name in codecs.items():
            if name in ours and pt not in payload_types:
                payload_types[pt], names[pt] = ours[name], name
        track = self.video if kind == "video" else self.audio
        track.attach(payload_types, names)

    # -- the operator -----------------------------------------------------------------

    def cut(self, key: SourceKey, now: float) -> bool:
        """Put video source ``key`` on air from its next key frame. True: ask ``key`` for one now."""
        if self._kinds.get(key) != "video":
            raise UsageError(f"no video source {key!r}")
        if key == self.on_air and self.next is None:
            return False
        if key == self.on_air:  # back to what is still on air: the cut is called off
            self.next = None
            self.video.want(self._ssrcs[key])
            return False
        self.next = key
        if key == CARD:
            assert self.card is not None
            self.card.start(now)
        ssrc = self._ssrcs.get(key)
        if ssrc is None:
            return True  # nothing of it yet: wanted at its first packet
        return self.video.want(ssrc) and key != CARD  # (every frame of the card is a key frame)

    def pick_audio(self, key: SourceKey | None, now: float) -> None:
        """Put audio source ``key`` on air at once (None: no audio)."""
        if key is not None and self._kinds.get(key) != "audio":
            raise UsageError(f"no audio source {key!r}")
        self.audio_source = key
        ssrc = self._ssrcs.get(key) if key is not None else None
        if ssrc is not None:
            self.audio.want(ssrc)

    # -- packets ----------------------------------------------------------------------

    def packet(self, key: SourceKey, packet: RtpPacket, now: float) -> RtpPacket | None:
        """A packet of source ``key``: the program's packet, or None (not on air, or waiting for a key
        frame: :attr:`waiting` then says which source should be asked again)."""
        kind = self._kinds.get(key)
        if kind is None:
            return None
        if self._ssrcs.get(key) != packet.ssrc:  # its first packet, or its publisher restarted it
            self._ssrcs[key] = packet.ssrc
            if kind == "video" and key in (self.next, self.on_air):
                self.next = key
                self.video.want(packet.ssrc)
            elif kind == "audio" and key == self.audio_source:
                self.audio.want(packet.ssrc)
        if kind == "audio":
            return self.audio.forward(packet, now) if key == self.audio_source else None
        if key not in (self.on_air, self.next):
            return None
        out = self.video.forward(packet, now)
        if out is not None and key == self.next and self.video.rewriter.source == packet.ssrc:
            self._switched(key)
        return out

    def _switched(self, key: SourceKey) -> None:
        """The new source's key frame went out: it is on air."""
        self.on_air, self.next = key, None
        self.cuts += 1
        if key != CARD and self.card is not None:
            self.card.stop()

    @property
    def waiting(self) -> SourceKey | None:
        """The source a cut waits for, when that is a camera (the card needs no asking)."""
        return self.next if self.next not in (None, CARD) else None

    def keyframe_source(self) -> SourceKey | None:
        """Who should answer a key-frame request of the program's subscribers: the source being switched to
        (its key frame serves both), else the one on air; None for the card (every frame is a key frame)."""
        key = self.next or self.on_air
        return None if key == CARD else key

    # -- the card's timer -------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return self.card.next_deadline() if self.card is not None else None

    def handle_timeout(self, now: float) -> list[RtpPacket]:
        """The program's packets of the card frame due, if the card is on air or being cut to."""
        if self.card is None:
            return []
        out = []
        for packet in self.card.handle_timeout(now):
            forwarded = self.packet(CARD, packet, now)
            if forwarded is not None:
                out.append(forwarded)
        return out

    @property
    def state(self) -> ProgramState:
        return ProgramState(self.on_air, self.next, self.audio_source, self.cuts)
