"""The media of one ``netcore-call`` session: local tracks from the chosen sources, sinks for what arrives."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from netcore.media.sinks import FileRecorder, FrameCounter, discard
from netcore.media.sources import FileAudioSource, FileVideoSource, ScreenSource
from netcore.media.synthetic import SyntheticCamera, SyntheticMicrophone
from netcore.peer.connection import PeerConnection
from netcore.peer.tracks import LocalAudioTrack, LocalVideoTrack, RemoteTrack
from netcore.sdp.wire import parse

__all__ = ["MediaChoice", "LocalMedia", "Received", "SIMULCAST"]

# --simulcast: the page's three layers (a quarter, half and the whole picture, lowest first)
SIMULCAST = [{"rid": "q", "scale_resolution_down_by": 4}, {"rid": "h", "scale_resolution_down_by": 2}, {"rid": "f"}]


@dataclass(frozen=True)
class MediaChoice:
    """What to send: ``audio``/``video`` (synthetic unless a file or the screen is given)."""

    audio: bool = True
    video: bool = True
    screen: str | None = None  # an X display (":99") to send instead of the camera
    video_file: str | None = None
    audio_file: str | None = None
    width: int = 640
    height: int = 480
    fps: float = 30.0
    marks: bool = False  # the synthetic camera flashes when the microphone clicks (A/V sync)
    simulcast: bool = False  # the video as three simulcast layers (SIMULCAST), as the page's camera goes
    noise: int = 0  # the synthetic camera's luma noise (netcore.media.synthetic): encoders spend their targets
    temporal_layers: int = 1  # VP8 temporal layers of the video (each simulcast layer's): 3 is L1T3

    @property
    def kinds(self) -> list[str]:
        """The call's ``media`` list for ``call.invite``."""
        kinds = ["audio"] if self.audio else []
        if self.video:
            kinds.append("screen" if self.screen else "video")
        return kinds


class LocalMedia:
    """The sources, opened before the call so a display or file that fails says so first."""

    def __init__(self, choice: MediaChoice) -> None:
        self.choice = choice
        self._screen: ScreenSource | None = None
        self.video: LocalVideoTrack | None = None
        self.audio: LocalAudioTrack | None = None
        if choice.video:
            if choice.screen:
                self._screen = ScreenSource(choice.screen, fps=choice.fps)
                self.video = LocalVideoTrack(iter(self._screen), fps=choice.fps)
            elif choice.video_file:
                self.video = LocalVideoTrack(iter(FileVideoSource(choice.video_file, fps=choice.fps)), fps=choice.fps)
            else:
                self.video = LocalVideoTrack(SyntheticCamera(choice.width, choice.height, choice.fps,
                                                             flash=choice.marks, noise=choice.noise))
        if choice.audio:
            if choice.audio_file:
                self.audio = LocalAudioTrack(iter(FileAudioSource(choice.audio_file)))
            else:
                self.audio = LocalAudioTrack(SyntheticMicrophone())

    def add_to(self, pc: PeerConnection) -> None:
        """Offerer: send our tracks and ask to receive the kinds we do not send."""
        for track in (self.audio, self.video):
            if track is self.video and track is not None and (self.choice.simulcast or self.choice.temporal_layers > 1):
                pc.add_transceiver(track, send_encodings=self._encodings())
            elif track is not None:
                pc.add_track(track)
        for kind in ("audio", "video"):
            if not any(t.kind == kind for t in pc.transceivers):
                pc.add_transceiver(kind, "recvonly")

    def _encodings(self) -> list[dict]:
        """The video's send encodings: SIMULCAST's layers or one, each with the temporal layers chosen."""
        encodings = SIMULCAST if self.choice.simulcast else [{}]
        if self.choice.temporal_layers == 1:
            return encodings
        mode = f"L1T{self.choice.temporal_layers}"
        return [{**encoding, "scalability_mode": mode} for encoding in encodings]

    def add_for_offer(self, pc: PeerConnection, offer: str) -> None:
        """Answerer: one transceiver per offered audio/video section, in the offer's order, each
        sending our track of its kind if we have one (the page adds its tracks when the offer
        arrives too). The order matters: the peer connection pairs its transceivers with the
        negotiated sections by position."""
        tracks = {"audio": self.audio, "video": self.video}
        for media in parse(offer).media:
            if media.kind not in tracks:
                continue
            track = tracks[media.kind]
            if track is not None:
                pc.add_track(track)
                tracks[media.kind] = None
            else:
                pc.add_transceiver(media.kind, "recvonly")

    def close(self) -> None:
        if self._screen is not None:
            self._screen.close()


@dataclass
class Received:
    """Counters of what arrived (video frame numbers read back) and, with a recorder, the file."""

    recorder: FileRecorder | None = None
    keep: bool = True  # False: decode and discard (receive-only load)
    video: FrameCounter = field(default_factory=lambda: FrameCounter(read_numbers=True))
    audio: FrameCounter = field(default_factory=FrameCounter)

    def attach(self, track: RemoteTrack) -> None:
        """Give a new remote track its sinks (on the peer connection's ``track`` event)."""
        counter = self.video if track.kind == "video" else self.audio
        track.on_frame(counter if self.keep else _count_only(counter))
        if self.recorder is not None:
            track.on_frame(self.recorder.sink(track.kind))

    def summary(self) -> dict[str, Any]:
        v, a = self.video, self.audio
        return {
            "video": {"frames": v.frames, "numbers": v.numbers, "in_order": v.in_order,
                      "unreadable": v.unreadable, "width": v.width, "height": v.height},
            "audio": {"frames": a.frames, "samples": a.samples},
        }


def _count_only(counter: FrameCounter):
    def sink(frame) -> None:
        counter.frames += 1
        discard(frame)
    return sink


def recorder(path: str | None, choice: MediaChoice) -> FileRecorder | None:
    if path is None:
        return None
    loop = asyncio.get_running_loop()
    return FileRecorder(path, loop.time, choice.width, choice.height)
