"""The audio mix of a studio: every microphone summed into one Opus stream.

Mixing needs the audio decoded: each source's Opus packets to 48 kHz
samples, summed, and coded again.  That is cheap: two sources decoded and
one stream coded take about 0.25 ms of CPU per 20 ms frame with PyAV's
libopus (a few hundredths of a core for a studio), so the switcher offers
the mix as one more audio source, :data:`MIX`, beside picking one
microphone (which costs nothing and keeps the source's own coding).

:class:`MixClock` is the sans-IO part: it keeps each source's latest
payloads (at most :data:`MAX_QUEUED`, the older dropped: a source that
bursts does not build up delay) and every :data:`FRAME` seconds makes a
:class:`MixJob` (after a stall, the last :data:`MAX_QUEUED` missed at
once), the payload of each source for that frame (None: it sent
nothing, it counts as silence). :class:`OpusMixer` runs the job
(decode, sum, clip, encode); it holds a decoder per source, so its jobs
run one at a time and in order (the call server runs them on one worker
thread, off its event loop).  The mix's packets get their own SSRC,
sequence numbers and a 48 kHz timestamp of its frame count, and reach
the program through the switcher like a microphone's.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from netcore.broadcast.ticker import Ticker
from netcore.rtp.packet import RtpPacket

__all__ = ["MixClock", "MixJob", "OpusMixer", "MIX", "FRAME", "SAMPLES", "MAX_QUEUED", "MIX_PAYLOAD_TYPE"]

MIX = ("", "mix")  # the mix, as an audio source of the switcher
FRAME = 0.02  # seconds of audio per mixed packet
SAMPLES = 960  # per frame at 48 kHz
MAX_QUEUED = 3  # payloads kept per source between two frames of the mix
MIX_PAYLOAD_TYPE = 111  # Opus


@dataclass(frozen=True)
class MixJob:
    """One frame of the mix to make: its number and each source's payload (None: silence)."""

    number: int
    payloads: tuple[tuple[tuple[str, str], bytes | None], ...]


class MixClock:
    """When to mix and what (sans-IO); see the module docstring."""

    def __init__(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self._queues: dict[tuple[str, str], deque[bytes]] = {}
        self._ticker = Ticker(FRAME)
        self._number = 0
        self.frames = 0  # frames of the mix made
        self.dropped = 0  # payloads dropped because their source ran ahead

    @property
    def running(self) -> bool:
        return self._ticker.running

    def start(self, now: float) -> None:
        self._ticker.start(now)

    def stop(self) -> None:
        self._ticker.stop()
        for queue in self._queues.values():
            queue.clear()

    def add_source(self, key: tuple[str, str]) -> None:
        self._queues.setdefault(key, deque())

    def remove_source(self, key: tuple[str, str]) -> None:
        self._queues.pop(key, None)

    def add(self, key: tuple[str, str], payload: bytes) -> None:
        """A source's Opus payload (only while running; one of a source not added is ignored)."""
        queue = self._queues.get(key)
        if queue is None or not self._ticker.running:
            return
        if len(queue) >= MAX_QUEUED:
            queue.popleft()
            self.dropped += 1
        queue.append(payload)

    def next_deadline(self) -> float | None:
        return self._ticker.next_deadline()

    def handle_timeout(self, now: float) -> list[MixJob]:
        """The frames due, one per FRAME: after a stall (the caller late), the latest MAX_QUEUED of those
        missed (what the sources' queues can still fill), numbered for their time; the older are skipped."""
        periods = self._ticker.due(now)
        if not periods:
            return []
        made = min(periods, MAX_QUEUED)
        self._number += periods - made
        jobs = []
        for _ in range(made):
            jobs.append(MixJob(self._number, tuple((key, queue.popleft() if queue else None)
                                                   for key, queue in self._queues.items())))
            self._number += 1
        self.frames += made
        return jobs

    def packet(self, job: MixJob, payload: bytes) -> RtpPacket:
        """The mix's RTP packet for a job's coded payload."""
        return RtpPacket.build(payload_type=MIX_PAYLOAD_TYPE, sequence_number=job.number & 0xFFFF,
                               timestamp=(job.number * SAMPLES) & 0xFFFFFFFF, ssrc=self.ssrc, payload=payload)


class OpusMixer:
    """Decodes, sums and codes :class:`MixJob` s (not thread-safe: one job at a time, in order)."""

    def __init__(self, bitrate: int = 48_000) -> None:
        from netcore.media.codecs import AudioDecoder, AudioEncoder  # PyAV: only where a mix is made
        self._decoder_type = AudioDecoder
        self._decoders: dict[tuple[str, str], AudioDecoder] = {}
        self._encoder = AudioEncoder(target_bitrate=bitrate)
        self._pts = 0

    def mix(self, job: MixJob) -> bytes | None:
        """The Opus payload of the job's frame (None while the encoder fills its look-ahead)."""
        import av

        total = np.zeros(SAMPLES, np.int32)
        for key, payload in job.payloads:
            decoder = self._decoders.get(key)
            if decoder is None:
                decoder = self._decoders[key] = self._decoder_type()
            if payload is None:
                continue
            for frame in decoder.decode(payload):
                pcm = frame.to_ndarray().reshape(-1)
                if pcm.dtype != np.int16:
                    pcm = (np.clip(pcm, -1.0, 1.0) * 32767).astype(np.int16)
                n = min(SAMPLES, pcm.size)
                total[:n] += pcm[:n]
        for key in [k for k in self._decoders if k not in dict(job.payloads)]:
            del self._decoders[key]  # a source gone
        frame = av.AudioFrame.from_ndarray(np.clip(total, -32768, 32767).astype(np.int16).reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = 48_000
        frame.pts = self._pts
        self._pts += SAMPLES
        coded = self._encoder.encode(frame)
        return coded[-1].payloads[0] if coded else None
