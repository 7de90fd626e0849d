"""One transcoding job of the worker: a peer connection to the call server around a :class:`Transcoder`.

The call server names the job (``job.start``: the source's codec and the
renditions); the job's :class:`PeerConnection` offers one receive section
(the source track, which the call server puts into it) and one send section
per rendition, in the job's order (the call server makes each a layer of the
source track, in that order). Then:

* every coded source frame the receive jitter buffer lets out goes into the
  transcoder (:meth:`RemoteTrack.on_coded`: it is never decoded twice);
* the transcoder's CPU work runs in a thread, one frame at a time, so the
  loop keeps sending and receiving; its events come back to the loop:
  rendition frames go to their :class:`CodedVideoTrack`, stamped with the
  capture time the source's sender reports give their timestamps
  (:class:`SourceClock`: the renditions' own SRs then map their timestamps
  to the source's wallclock), and a ``SourceKeyframeNeeded`` becomes a PLI
  on the source;
* a PLI/FIR on a rendition (the call server passes its subscribers' on)
  forces a key frame of that rendition's encoder only.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from netcore.errors import UsageError
from netcore.peer.connection import Description, PeerConnection
from netcore.peer.tracks import CodedVideoTrack, RemoteTrack
from netcore.rtp.reports import NtpRtpMapping
from netcore.rtp.rtcp import SenderReport
from netcore.transcode.clock import SourceClock
from netcore.transcode.core import (VIDEO_CLOCK_RATE, RenditionEncoded, SourceFrame, SourceKeyframeNeeded,
                                    TranscodeMetrics, Transcoder)
from netcore.transcode.ladder import Rendition
from servers.daemon import cancel_and_wait

__all__ = ["TranscodeJob"]


class TranscodeJob:
    """The source track of one publisher into renditions, over one peer connection to the call server."""

    def __init__(self, job_id: str, source_codec: str, renditions: tuple[Rendition, ...],
                 log: Callable[..., None]) -> None:
        self.job_id = job_id
        self.log = log
        self.transcoder = Transcoder(source_codec, renditions, clock=time.perf_counter)
        self.clock = SourceClock()
        self.pc = PeerConnection()
        self.tracks: dict[str, CodedVideoTrack] = {}
        self.source: RemoteTrack | None = None
        self.closed = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._offset = 0.0  # wallclock minus the loop's clock
        self.pc.add_transceiver("video", "recvonly")
        for rendition in renditions:
            track = CodedVideoTrack(rendition.codec,
                                    on_keyframe_request=lambda name=rendition.name: self._keyframe_asked(name))
            self.tracks[rendition.name] = track
            self.pc.add_transceiver(track, "sendonly")
        self.pc.on("track", self._on_track)
        self.pc.on("rtcpreceived", self._on_rtcp)

    @property
    def metrics(self) -> TranscodeMetrics:
        return self.transcoder.metrics

    async def offer(self) -> str:
        """Our offer: the receive section first, then a send section per rendition."""
        loop = asyncio.get_running_loop()
        self._offset = time.time() - loop.time()
        await self.pc.set_local_description(self.pc.create_offer())
        self._task = loop.create_task(self._work())
        return self.pc.local_description.sdp

    async def answered(self, sdp: str) -> None:
        await self.pc.set_remote_description(Description(sdp, "answer"))

    async def close(self) -> None:
        self.closed = True
        self._wake.set()
        for track in self.tracks.values():
            track.end()
        await cancel_and_wait(self._task)
        await self.pc.close()

    # -- the source ---------------------------------------------------------------------

    def _on_track(self, track: RemoteTrack) -> None:
        if track.kind == "video" and self.source is None:
            self.source = track
            track.on_coded(self._on_coded)

    def _on_coded(self, codec: str, frame: Any, now: float) -> None:
        if codec != self.transcoder.source_codec:
            return  # the call server sends the source's codec; anything else cannot be transcoded here
        self.transcoder.push(SourceFrame([p.payload for p in frame.packets], frame.timestamp, frame.keyframe, now))
        self._wake.set()

    def _on_rtcp(self, packets: tuple, now: float) -> None:
        for packet in packets:
            if isinstance(packet, SenderReport):  # the source's (the only stream we receive)
                self.clock.sender_report(NtpRtpMapping(packet.ntp_timestamp, packet.rtp_timestamp, VIDEO_CLOCK_RATE))

    def _keyframe_asked(self, name: str) -> None:
        self.transcoder.request_keyframe(name)

    # -- the work -------------------------------------------------------------------------

    async def _work(self) -> None:
        """Frame after frame in a thread while any is queued; events handled on the loop in between."""
        transcoder = self.transcoder
        while not self.closed:
            await self._wake.wait()
            self._wake.clear()
            while not self.closed and await asyncio.to_thread(transcoder.process_next):
                self._events()
            self._events()

    def _events(self) -> None:
        while (event := self.transcoder.poll_event()) is not None:
            if isinstance(event, RenditionEncoded):
                captured = self.clock.capture_time(event.frame.timestamp, self._offset)
                self.tracks[event.rendition.name].put(event.frame, captured)
            elif isinstance(event, SourceKeyframeNeeded) and self.source is not None:
                try:
                    self.pc.request_keyframe(self.source)
                except UsageError:
                    pass  # nothing arrived yet: the call server asks for one when we connect
                self.log("transcode.source_keyframe", job=self.job_id, reason=event.reason)
