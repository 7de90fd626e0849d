"""Record what a :class:`~netcore.peer.connection.PeerConnection` receives from its peer.

The peer connection's two taps (``rtpreceived``, ``rtcpreceived``) feed a
:class:`~netcore.record.logger.RoomLogger`: each m-section the peer sends on
becomes a track ``PARTICIPANT-MID`` (added at its first packet, with the
codec the SDP agreed for its payload type); each sender report goes to the
track of its SSRC; the logger's key frame requests become PLIs.  The call
server's wiring is the same few lines on its own tap.
"""

from __future__ import annotations

from netcore.errors import UsageError
from netcore.record.logger import RoomLogger
from netcore.record.manifest import Codec
from netcore.rtp.packet import RtpPacket
from netcore.rtp.rtcp import SenderReport

__all__ = ["PeerRecorder"]


class PeerRecorder:
    """Journals the media ``pc`` receives as participant ``participant`` of ``logger``'s room."""

    def __init__(self, pc, logger: RoomLogger, participant: str, now: float) -> None:
        self.pc = pc
        self.logger = logger
        self.participant = participant
        self._tracks: dict[str, str] = {}  # mid -> track id
        self._ssrcs: dict[int, str] = {}  # SSRC -> track id
        self._remote: dict[str, object] = {}  # track id -> RemoteTrack
        logger.add_participant(participant, now)
        pc.on("track", self._on_track)
        pc.on("rtpreceived", self._on_rtp)
        pc.on("rtcpreceived", self._on_rtcp)

    def _on_track(self, track) -> None:
        self._remote[f"{self.participant}-{track.mid}"] = track

    def _codec(self, mid: str, payload_type: int) -> Codec | None:
        session = self.pc.negotiated
        for media in session.media if session is not None else ():
            if media.mid != mid:
                continue
            for c in media.recv_codecs:
                if c.payload_type == payload_type:
                    params = {k: v or "" for k, v in c.parameters}
                    return Codec(c.name, c.clock_rate, payload_type, c.channels or 1, params)
        return None

    def _on_rtp(self, mid: str, packet: RtpPacket, now: float) -> None:
        track_id = self._tracks.get(mid)
        if track_id is None:
            codec = self._codec(mid, packet.payload_type)
            if codec is None:
                return
            track_id = self._tracks[mid] = f"{self.participant}-{mid}"
            self.logger.add_track(track_id, self.participant, codec, now)
        self._ssrcs[packet.ssrc] = track_id
        self.logger.rtp(track_id, packet.serialize(), now)
        self._ask_keyframes(now)

    def _on_rtcp(self, packets, now: float) -> None:
        for packet in packets:
            if isinstance(packet, SenderReport) and packet.ssrc in self._ssrcs:
                self.logger.sender_report(self._ssrcs[packet.ssrc], packet, now)

    def _ask_keyframes(self, now: float) -> None:
        while (track_id := self.logger.poll_keyframe_request(now, self.participant)) is not None:
            remote = self._remote.get(track_id)
            if remote is not None:
                try:
                    self.pc.request_keyframe(remote)
                except UsageError:
                    pass  # no media on it yet: the policy asks again after its retry time

    def leave(self, now: float) -> None:
        self.logger.remove_participant(self.participant, now)
