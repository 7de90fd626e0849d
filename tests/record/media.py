"""Reading produced files back: frame numbers, flashes, clicks, the A/V offset every second."""

from __future__ import annotations

import json
import subprocess

import av
import numpy as np

from netcore.media.synthetic import SyntheticMicrophone, read_flash, read_frame_number


def ffprobe(path: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "format=duration,start_time,format_name:stream=codec_name,codec_type,width,height",
                          "-of", "json", path], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


class Decoded:
    """A file decoded: video frame (time, number, flash), audio samples placed at their times."""

    def __init__(self, path: str) -> None:
        self.video: list[tuple[float, int | None, bool]] = []
        self.keyframes: list[bool] = []  # per decoded video frame: its packet was a key frame
        chunks: list[tuple[float, np.ndarray]] = []
        with av.open(path) as container:
            streams = [s for s in container.streams if s.type in ("video", "audio")]
            for packet in container.demux(streams):
                if packet.size == 0:
                    continue
                for frame in packet.decode():
                    t = float(frame.pts * frame.time_base)
                    if packet.stream.type == "video":
                        number = read_frame_number(frame)
                        self.video.append((t, number, read_flash(frame)))
                        self.keyframes.append(bool(packet.is_keyframe))
                    else:
                        pcm = frame.to_ndarray().astype(np.float32)
                        pcm = pcm.mean(axis=0) if pcm.ndim == 2 and pcm.shape[0] > 1 else pcm.reshape(-1)
                        if frame.format.name.startswith("s16"):
                            pcm = pcm / 32768
                        chunks.append((t, pcm))
        self.sample_rate = 48_000
        end = max((t for t, _ in chunks), default=0.0) + 1.0
        self.pcm = np.zeros(int(end * self.sample_rate) + 1, np.float32)
        for t, pcm in chunks:
            start = int(round(t * self.sample_rate))
            self.pcm[start:start + len(pcm)] = pcm[:len(self.pcm) - start]

    @property
    def numbers(self) -> list[int | None]:
        return [n for _, n, _ in self.video]

    def flashes(self) -> list[float]:
        out, previous = [], False
        for t, _, flash in self.video:
            if flash and not previous:
                out.append(t)
            previous = flash
        return out

    def clicks(self) -> list[float]:
        return [s / self.sample_rate for s in SyntheticMicrophone().mark_onsets(self.pcm)]

    def offsets(self) -> list[float]:
        """Click minus flash (seconds) for every flash with a click within half a second."""
        clicks = np.array(self.clicks())
        out = []
        for flash in self.flashes():
            if len(clicks):
                nearest = clicks[np.argmin(np.abs(clicks - flash))]
                if abs(nearest - flash) < 0.5:
                    out.append(float(nearest - flash))
        return out
