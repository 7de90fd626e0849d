"""Per-subscriber rewriting of a forwarded stream: SSRC, sequence number, timestamp, VP8 picture ids.

Each receive section of a subscriber (a *slot*) has one outgoing SSRC of
the server's choosing.  What it carries changes over time: the publisher
restarts its encoder (new SSRC), the slot is given to another publisher,
a simulcast layer switch selects another source.  The subscriber must see
one stream all the same:

* sequence numbers follow on without a jump (RFC 3550 section 5.1: a jump
  looks like loss or a new source), and a gap is forwarded only where the
  source itself has one (a packet really lost upstream), through
  :class:`netcore.rtp.forward.StreamRewriter`;
* timestamps move forward by the wall time between the last packet of the
  old source and the first of the new one;
* VP8 (RFC 7741 section 4.2): PictureID (15 bits) and TL0PICIDX (8 bits)
  and KEYIDX (5 bits) continue from the last values sent, because a decoder
  that sees the picture id go backwards or repeat takes the new frames for
  duplicates or for references it never had;
* video switches to a new source only on a key frame of that source (what
  comes before it cannot be decoded); audio switches at once;
* VP8 temporal layers (RFC 7741 section 4.2: TID, Y): a slot forwards the
  frames whose TID is at most its :attr:`DownTrack.temporal`; the others
  are skipped, their sequence numbers and picture ids closed up (a gap in
  either reads as loss to the receiver: libwebrtc holds a frame back while
  a picture id before it is missing).  The forwarded TID goes down at
  the start of any frame and up only at a key frame or at a frame marked
  layer sync (Y=1: it references TL0 only, so the frames of its layer
  decode from there on); TL0PICIDX needs nothing, TL0 frames are never
  skipped;
* a **paused** slot (a last-N limit leaves its publisher out) skips every
  packet the same way, and once resumed forwards from the next key frame
  on, so the subscriber sees the stream stop and start again without a
  gap to NACK.
"""

from __future__ import annotations

import struct

from netcore.rtp.errors import RtpParseError
from netcore.rtp.forward import StreamRewriter
from netcore.rtp.keyframes import KEYFRAME_DETECTORS
from netcore.rtp.packet import RtpPacket
from netcore.rtp.sequence import SequenceUnwrapper
from netcore.rtp.vp8 import Vp8Descriptor
from netcore.sfu.changes import changed

__all__ = ["Vp8Rewriter", "DownTrack", "Forwarded", "ALL_TEMPORAL", "PICTURE_MAP"]

ALL_TEMPORAL = 3  # the highest TID the descriptor can carry: a slot not limited forwards every layer
PICTURE_MAP = 128  # recent picture ids remembered per slot (a retransmission keeps its rewritten id)

_SEQ_TS = struct.Struct("!HI")


class Vp8Rewriter:
    """Keeps VP8 PictureID, TL0PICIDX and KEYIDX continuous across source switches and skipped
    pictures (RFC 7741 4.2)."""

    __slots__ = ("_pid_offset", "_tl0_offset", "_key_offset", "_last_pid", "_last_tl0", "_last_key", "_rebase",
                 "_pids", "_newest_pid")

    def __init__(self) -> None:
        self._pid_offset = self._tl0_offset = self._key_offset = 0
        self._last_pid: int | None = None
        self._last_tl0: int | None = None
        self._last_key: int | None = None
        self._rebase = True
        self._pids: dict[int, int] = {}  # incoming picture id -> the one sent, the latest PICTURE_MAP
        self._newest_pid: int | None = None  # the newest incoming picture id seen, sent or skipped

    def switched(self) -> None:
        """The next payload is the first of a new source."""
        self._rebase = True

    def skip(self, desc: Vp8Descriptor) -> None:
        """A packet of this picture is not forwarded: the pictures after it close up (once per picture,
        and only for one newer than every picture seen: an older one's successors have their ids)."""
        pid = desc.picture_id
        if pid is None or self._rebase or pid in self._pids:
            return
        if self._newest_pid is None or 0 < (pid - self._newest_pid) & 0x7FFF < 0x4000:
            self._newest_pid = pid
            self._pid_offset = (self._pid_offset - 1) & 0x7FFF

    def rewrite(self, payload: bytes, parsed: tuple[Vp8Descriptor, int] | None = None) -> bytes:
        """The payload with rewritten descriptor fields (``parsed``: its descriptor, already read, which is
        changed in place); raises RtpParseError on a malformed descriptor."""
        desc, pos = parsed if parsed is not None else Vp8Descriptor.parse(payload)
        if self._rebase:
            self._rebase = False
            self._pids.clear()
            self._newest_pid = None
            if desc.picture_id is not None:
                base = -1 if self._last_pid is None else self._last_pid
                self._pid_offset = (base + 1 - desc.picture_id) & 0x7FFF if self._last_pid is not None else 0
            if desc.tl0picidx is not None:
                self._tl0_offset = ((self._last_tl0 + 1 - desc.tl0picidx) & 0xFF
                                    if self._last_tl0 is not None else 0)
            if desc.keyidx is not None:
                self._key_offset = ((self._last_key + 1 - desc.keyidx) & 0x1F
                                    if self._last_key is not None else 0)
        if desc.picture_id is not None:
            incoming = desc.picture_id
            pid = self._pids.get(incoming)
            if pid is None:
                pid = (incoming + self._pid_offset) & 0x7FFF
                self._pids[incoming] = pid
                if len(self._pids) > PICTURE_MAP:
                    del self._pids[next(iter(self._pids))]
                if self._newest_pid is None or 0 < (incoming - self._newest_pid) & 0x7FFF < 0x4000:
                    self._newest_pid = incoming
            if self._last_pid is None or (pid - self._last_pid) & 0x7FFF < 0x4000:
                self._last_pid = pid
            desc.picture_id = pid
            desc.long_picture_id = True
        if desc.tl0picidx is not None:
            tl0 = (desc.tl0picidx + self._tl0_offset) & 0xFF
            if self._last_tl0 is None or (tl0 - self._last_tl0) & 0xFF < 0x80:
                self._last_tl0 = tl0
            desc.tl0picidx = tl0
        if desc.keyidx is not None:
            key = (desc.keyidx + self._key_offset) & 0x1F
            self._last_key = key
            desc.keyidx = key
        return desc.serialize() + payload[pos:]


class Forwarded:
    """Why a packet was not forwarded (the drop counters' names)."""

    WRONG_SOURCE = "wrong_source"  # a packet of a source this slot does not forward
    WAITING_KEYFRAME = "waiting_keyframe"  # a new source, before its key frame
    LATE = "late"  # older than the switch to its source
    CODEC = "codec"  # a codec the subscriber did not agree on
    MALFORMED = "malformed"  # a payload descriptor that does not parse
    DUPLICATE = "duplicate"  # a sequence number of its source already forwarded (a browser's RTX probe)
    TEMPORAL = "temporal_layer"  # a VP8 frame of a temporal layer above the slot's (skipped, numbers closed up)
    LAST_N = "last_n"  # video of a publisher outside the subscriber's last-N (skipped, numbers closed up)


class ReceivedWindow:
    """Which of one source's latest :data:`WINDOW` sequence numbers arrived.

    libwebrtc probes and pads with RTX copies of packets the receiver already
    has (its "redundant payloads"); forwarded, each would reach subscribers
    on a sequence number they already received, which SRTP rejects as a
    replay (RFC 3711 section 3.3.2) after the transport-wide number was
    spent on it, so the subscriber's feedback reports it lost and the
    estimate towards it collapses.  Only a packet new to this window (or a
    retransmission filling a gap in it) is forwarded.
    """

    WINDOW = 1024

    __slots__ = ("ssrc", "_unwrap", "_ring", "_highest")

    def __init__(self) -> None:
        self.ssrc: int | None = None
        self._reset()

    def _reset(self) -> None:
        self._unwrap = SequenceUnwrapper()
        self._ring: list[int | None] = [None] * self.WINDOW
        self._highest = -1

    def arrived(self, ssrc: int, sequence_number: int) -> bool:
        """Record an arrival; False if it is a duplicate or older than the window."""
        if ssrc != self.ssrc:  # a new source (a publisher restart): its numbers start afresh
            self._reset()
            self.ssrc = ssrc
        seq = self._unwrap.unwrap(sequence_number)
        if seq <= self._highest - self.WINDOW:
            return False
        slot = seq % self.WINDOW
        if self._ring[slot] == seq:
            return False
        self._ring[slot] = seq
        self._highest = max(self._highest, seq)
        return True


class DownTrack:
    """One outgoing stream of one subscriber slot: what source it forwards and how it is rewritten.

    ``payload_types`` maps the publisher's payload type to the subscriber's
    (same codec by name); ``codec`` names the publisher's codec per payload
    type (for key-frame detection and VP8 rewriting).
    """

    __slots__ = ("ssrc", "kind", "clock_rate", "rewriter", "vp8", "audio_level_id", "payload_types",
                 "codecs", "wanted", "packets", "bytes", "_dropped", "_needs_keyframe", "_delta", "max_temporal",
                 "_temporal", "_frame", "paused", "_resuming", "fast")

    def __init__(self, ssrc: int, kind: str, clock_rate: int, audio_level_id: int | None = None) -> None:
        self.ssrc = ssrc
        self.kind = kind
        self.clock_rate = clock_rate
        self.rewriter = StreamRewriter(ssrc, clock_rate)
        self.vp8 = Vp8Rewriter()
        self.audio_level_id = audio_level_id
        self.payload_types: dict[int, int] = {}
        self.codecs: dict[int, str] = {}
        self.wanted: int | None = None  # the source SSRC to forward (switch on its key frame)
        self.packets = 0
        self.bytes = 0
        self._dropped: dict[str, int] = {}
        self._needs_keyframe = False
        self._delta: int | None = None
        self.max_temporal = ALL_TEMPORAL  # the highest VP8 TID wanted (the allocator's choice)
        self._temporal = ALL_TEMPORAL  # the highest TID forwarded now (moves up only where decodable)
        self._frame: tuple[int, bool] | None = None  # (picture id, forwarded) of the latest frame decided
        self.paused = False  # nothing forwarded (a last-N limit)
        self._resuming = False  # resumed: forwarding starts again at a key frame
        self.fast = None  # the compiled path's handle while it forwards this track (netcore.sfu.fastpath)

    @property
    def temporal(self) -> int:
        """The highest TID forwarded now (moves up only where decodable; the compiled track's while installed)."""
        return self.fast.track.temporal if self.fast is not None else self._temporal

    @property
    def dropped(self) -> dict[str, int]:
        """Packets not forwarded, per reason (:class:`Forwarded`), those left out in C included."""
        if self.fast is not None:
            self.fast.take_drops()
        return self._dropped

    def _release(self) -> None:
        """The core changes what this track forwards: the compiled path gives it back first (and the
        compiled receive path takes no packet of any source without the core until it is armed again)."""
        changed()
        if self.fast is not None:
            self.fast.eject()

    def attach(self, payload_types: dict[int, int], codecs: dict[int, str]) -> None:
        """Forward a (new) publisher track: its payload types mapped onto ours."""
        self._release()
        self.payload_types = payload_types
        self.codecs = codecs

    def want(self, source: int, timestamp_delta: int | None = None) -> bool:
        """Forward ``source`` from now on (video: from its next key frame). True if a key frame is needed.

        ``timestamp_delta``: what puts ``source``'s timestamps on the current
        source's timeline (a simulcast layer of the same publisher, from both
        layers' sender reports); without it the wall time between the two
        sources' packets is used.
        """
        self._release()
        if source == self.rewriter.source:
            self.wanted = None  # back to the source still being forwarded: no switch at all
            self._needs_keyframe = False
            return False
        if self.kind == "audio":
            self.rewriter.select(source, timestamp_delta)
            self.wanted = None
            return False
        self.wanted = source
        self._delta = timestamp_delta
        self._needs_keyframe = True
        return True

    def pause(self) -> None:
        """Forward nothing until :meth:`resume` (the numbers close up over the pause)."""
        self._release()
        self.paused = True

    def resume(self) -> bool:
        """Forward again, video from its next key frame; True if a key frame is needed."""
        self._release()
        self.paused = False
        self._resuming = self.kind == "video" and self.rewriter.source is not None
        return self._resuming or self._needs_keyframe

    def _skip(self, packet: RtpPacket, now: float, codec: str, reason: str) -> None:
        """Leave ``packet`` out on purpose: the numbers after it close up (see the module docstring)."""
        self.rewriter.skip(packet, now)
        if codec == "VP8":
            try:
                self.vp8.skip(Vp8Descriptor.parse(packet.payload)[0])
            except RtpParseError:
                pass
        self._drop(reason)

    def _drop(self, reason: str) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + 1

    def forward(self, packet: RtpPacket, now: float, audio_level: bytes | None = None) -> RtpPacket | None:
        """The packet as this subscriber gets it, or None (counted in :attr:`dropped`)."""
        out_pt = self.payload_types.get(packet.payload_type)
        if out_pt is None:
            self._drop(Forwarded.CODEC)
            return None
        codec = self.codecs.get(packet.payload_type, "")
        payload = packet.payload
        if self.paused:
            self._skip(packet, now, codec, Forwarded.LAST_N)
            return None
        if self.wanted is not None and packet.ssrc == self.wanted:
            detector = KEYFRAME_DETECTORS.get(codec)
            if detector is not None and not detector(payload):
                self._drop(Forwarded.WAITING_KEYFRAME)
                return None
            self.rewriter.select(packet.ssrc, self._delta)  # RFC 7741: a key frame starts a decodable stream
            self.vp8.switched()
            self._frame = None
            self.wanted = None
            self._needs_keyframe = False
        if packet.ssrc != self.rewriter.source:
            self._drop(Forwarded.WRONG_SOURCE)
            return None
        if self._resuming:
            detector = KEYFRAME_DETECTORS.get(codec)
            if detector is not None and not detector(payload):
                self._skip(packet, now, codec, Forwarded.WAITING_KEYFRAME)
                return None
            self._resuming = False
            self._frame = None
        parsed = None
        if codec == "VP8":
            try:
                parsed = Vp8Descriptor.parse(payload)
            except RtpParseError:
                self._drop(Forwarded.MALFORMED)
                return None
            desc = parsed[0]
            if desc.tid is not None and not self._temporal_forwarded(desc, payload, parsed[1]):
                self.rewriter.skip(packet, now)
                self.vp8.skip(desc)
                self._drop(Forwarded.TEMPORAL)
                return None
        dropped_before = self.rewriter.dropped
        raw = self.rewriter.rewrite(packet, now)
        if raw is None:
            if self.rewriter.dropped != dropped_before:
                self._drop(Forwarded.LATE)
            return None
        if codec == "VP8":
            try:
                payload = self.vp8.rewrite(payload, parsed)
            except RtpParseError:
                self._drop(Forwarded.MALFORMED)
                return None
        seq, ts = _SEQ_TS.unpack_from(raw, 2)
        extensions = []
        if audio_level is not None and self.audio_level_id is not None:
            extensions.append((self.audio_level_id, audio_level))
        out = RtpPacket.build(payload_type=out_pt, sequence_number=seq, timestamp=ts, ssrc=self.ssrc,
                              payload=payload, marker=packet.marker, extensions=extensions)
        self.packets += 1
        self.bytes += len(out.data)
        return out

    def _temporal_forwarded(self, desc: Vp8Descriptor, payload: bytes, pos: int) -> bool:
        """Whether this packet's frame is forwarded (see the module docstring: temporal layers)."""
        pid = desc.picture_id
        frame = self._frame
        if frame is not None and pid is not None and frame[0] == pid:
            return frame[1]  # one decision per frame
        tid = desc.tid
        assert tid is not None
        if desc.start_of_partition and desc.partition_index == 0:  # RFC 7741 4.1: a frame starts
            target, current = self.max_temporal, self._temporal
            if pos < len(payload) and not payload[pos] & 0x01:
                current = target  # a key frame: every layer decodes from here
            elif target < current:
                current = target
            elif current < tid <= target and desc.layer_sync:
                current = tid
            self._temporal = current
        forwarded = tid <= self._temporal
        if pid is not None:
            self._frame = (pid, forwarded)
        return forwarded

    @property
    def needs_keyframe(self) -> bool:
        return self._needs_keyframe or self._resuming

    @property
    def resuming(self) -> bool:
        """Resumed after a pause, the key frame of its source not yet arrived."""
        return self._resuming
