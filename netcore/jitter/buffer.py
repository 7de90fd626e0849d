"""A time-based jitter buffer for one RTP stream, sans-IO.

Verbs: :meth:`JitterBuffer.insert` a packet with its arrival time,
:meth:`JitterBuffer.pop` the next frame when it is due, ask
:meth:`JitterBuffer.next_deadline` when to call again, and drain
:meth:`JitterBuffer.poll_event` for NACK and key-frame requests to send.

Timing.  Audio packets, and video frames that cannot play at once, are
due at ``base + timestamp / clock_rate + delay`` where ``base`` is the
smallest transit time (arrival minus media time) seen over the last ten
seconds, i.e. the fastest path through the network, and ``delay`` the
target delay.  Due times come from RTP timestamps, not from when the
previous frame left, so a loss burst never adds latency: once it stops,
frames play at ``base + delay`` again.

Video playout.  A video frame that can be decoded now (complete, and
following what played or a key frame) leaves at once: nothing it needs is
missing, and waiting would only add latency (the renderer paces display).
A frame that cannot (incomplete, or after a gap) waits while what it lacks
may still come: a number NACKed (or about to be) and not given up, until
as many NACK rounds after its first NACK as the measured loss rate calls
for (at least two, at most four: a retransmission is lost as often as the
original) have had their answer's time, the 95th percentile of the recent
NACK response times (first NACK to its retransmission; at least a round
trip plus the jitter).  Then it is overdue: a key frame is requested and
the frame keeps waiting for whichever comes first, its retransmission or a
complete key frame behind it (the frames before that key frame are then
skipped), up to ``max_delay`` past its due time.  Waiting costs a short
freeze; skipping costs every frame until a key frame.  A frame whose tail
has not come, with nothing after it, waits up to ``max_delay`` too:
nothing else could play meanwhile, and the sender's pacer may spread a
large frame over more than a round trip.  A frame that lacks something
nothing will bring (not NACKed, or given up) is skipped at its due time.

Target delay.  What the path's jitter needs: the 95th percentile of the
recent excess transit (transit minus ``base``) of first copies (late ones
included), bounded by ``min_delay`` and ``max_delay``.  Retransmissions do
not count (their delay is the NACK response time), nor do copies of
packets that already played.  The target grows at once and shrinks by its
excess over the need per ``decay_time``, at least ``decay_rate`` seconds
per second.

Frames.  Video packets are grouped by timestamp; a frame is complete when
its marker packet is there, every sequence number from its first packet is
there, and that first packet is known to start the frame (the codec says so
or the packet before it belongs to another frame).  Audio packets are
frames of their own.  A frame still incomplete when it must leave is
skipped; a video frame after a gap is dropped until a key frame comes (when
``is_keyframe`` is given), and a key frame is requested.

Bounds.  At most ``max_packets`` packets and ``max_bytes`` bytes are held;
beyond that the oldest frames are skipped.  A sequence number more than
``max_seq_jump`` away is dropped unless the next packet confirms the jump,
which then resets the buffer; so does a video timestamp more than a second
behind the last frame played (the sender's timeline went backwards).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from netcore.errors import UsageError
from netcore.jitter.events import JitterEvent, KeyFrameRequested, NackRequested
from netcore.jitter.nack import NackConfig, NackGenerator
from netcore.rtp.packet import RtpPacket
from netcore.rtp.sequence import SequenceUnwrapper, TimestampUnwrapper

__all__ = [
    "JitterConfig",
    "JitterBuffer",
    "JitterMetrics",
    "Frame",
    "JitterEvent",
    "NackRequested",
    "KeyFrameRequested",
]

_BUCKET = 1.0  # seconds per transit-minimum bucket
_BUCKETS = 10  # buckets kept: base is the minimum over ~10 s
_QUANTILE_EVERY = 16  # packets between recomputing the delay quantile
_MISSED_KEPT = 512  # sequence numbers remembered as missing when played past
_LOSS_WEIGHT = 0.01  # per sequence number, of the moving average loss rate
_RESIDUAL_LOSS = 0.01  # NACK rounds are waited for until this little is left
_MIN_ROUNDS = 2  # NACK rounds a frame behind a gap waits for, at least ...
_MAX_ROUNDS = 4  # ... and at most


@dataclass(frozen=True, slots=True)
class JitterConfig:
    clock_rate: int
    video: bool = True
    min_delay: float = 0.0
    max_delay: float = 1.0
    initial_delay: float = 0.05
    max_packets: int = 2000
    max_bytes: int = 4_000_000
    max_seq_jump: int = 3000  # like RFC 3550 MAX_DROPOUT
    nack: NackConfig | None = field(default_factory=NackConfig)
    keyframe_interval: float = 0.5  # spacing of repeated key-frame requests
    delay_quantile: float = 0.95
    delay_window: int = 500  # packets in the excess-transit window
    decay_rate: float = 0.05  # seconds of target delay shed per second, at least
    decay_time: float = 1.0  # or the excess over the need divided by this, if more
    recovery_quantile: float = 0.95  # of the recent NACK answers' response times
    recovery_window: int = 100  # answers in that quantile, at most ...
    recovery_memory: float = 5.0  # ... and none older than this (seconds)
    wait_for_keyframe: bool = True


@dataclass(slots=True)
class Frame:
    """A frame (video) or packet (audio) ready for the decoder."""

    timestamp: int  # RTP timestamp
    packets: list[RtpPacket]
    keyframe: bool
    first_sequence: int  # extended sequence numbers
    last_sequence: int
    after_gap: bool  # something before it was lost or skipped

    @property
    def payloads(self) -> list[bytes]:
        return [p.payload for p in self.packets]


@dataclass(slots=True)
class JitterMetrics:
    target_delay: float = 0.0  # seconds, current
    packets_received: int = 0
    packets_late: int = 0  # arrived after their place was played or skipped without them
    packets_duplicate: int = 0  # copies of packets held, played or late already
    packets_lost: int = 0  # never arrived before their place was played
    packets_recovered: int = 0  # arrived after a NACK
    packets_dropped: int = 0  # unconfirmed jumps, other SSRCs, bounds
    frames_popped: int = 0
    frames_skipped: int = 0
    nacks_sent: int = 0
    keyframe_requests: int = 0
    resets: int = 0
    loss_rate: float = 0.0  # moving average of the share of numbers that went missing
    nack_response: float = 0.0  # seconds from a first NACK to its answer: recent p95, or the prior
    delay_total: float = 0.0  # seconds frames spent, first packet in to popped (W3C jitterBufferDelay)
    packets_buffered: int = 0
    bytes_buffered: int = 0


class _Frame:
    __slots__ = ("key", "ts", "packets", "first", "last", "start_seq", "keyframe", "size", "arrived")

    def __init__(self, key: int, ts: int, arrived: float) -> None:
        self.key = key
        self.ts = ts
        self.arrived = arrived  # when its first packet came
        self.packets: dict[int, RtpPacket] = {}
        self.first = 1 << 62
        self.last: int | None = None  # sequence number of the marker packet
        self.start_seq: int | None = None  # packet the codec says starts it
        self.keyframe = False
        self.size = 0


class JitterBuffer:
    """Jitter buffer of one SSRC (see the module docstring)."""

    def __init__(
        self,
        config: JitterConfig,
        *,
        is_keyframe: Callable[[bytes], bool] | None = None,
        is_frame_start: Callable[[bytes], bool] | None = None,
        rtt: float = 0.1,
    ) -> None:
        if config.clock_rate <= 0 or config.min_delay > config.max_delay:
            raise UsageError("clock_rate must be positive and min_delay <= max_delay")
        self.config = config
        self._is_keyframe = is_keyframe
        self._is_frame_start = is_frame_start
        self._keyframes = config.video and is_keyframe is not None and config.wait_for_keyframe
        self._nack = NackGenerator(config.nack, rtt) if config.nack is not None else None
        self.metrics = JitterMetrics(target_delay=self._clamp(config.initial_delay))
        self.ssrc: int | None = None
        self._events: deque[JitterEvent] = deque(maxlen=64)
        self._last_keyframe_request = -1e18
        self._excess: deque[float] = deque(maxlen=config.delay_window)
        self._excess_q = 0.0  # its quantile, recomputed every few packets
        self._since_quantile = 0
        self._desired = self.metrics.target_delay
        self._target_updated = 0.0
        self._responses: deque[tuple[float, float]] = deque(maxlen=config.recovery_window)
        self._response_q = 0.0  # their quantile, valid until _response_until
        self._response_until = -1.0  # when it must be recomputed (an entry expires)
        self._now = 0.0  # the latest time given to insert or pop
        self._reset_stream()

    def _reset_stream(self) -> None:
        self._seq = SequenceUnwrapper()
        self._ts = TimestampUnwrapper()
        self._frames: dict[int, _Frame] = {}
        self._order: list[int] = []  # frame keys, ascending
        self._seq_key: dict[int, int] = {}  # buffered seq -> frame key
        self._played_seq: int | None = None
        self._played_key: int | None = None
        # Sequence numbers played past while missing -> how many times they
        # were NACKed and when first (None: one copy came since), to read a
        # packet arriving after its place was played.
        self._missed: dict[int, tuple[int, float | None] | None] = {}
        self._highest: int | None = None
        self._jump_candidate: int | None = None
        self._buckets: dict[int, float] = {}
        self._base: float | None = None
        self._need_keyframe = self._keyframes
        self._gap = False
        self._overdue: int | None = None  # the first frame, once its recovery is late
        self.metrics.packets_buffered = 0
        self.metrics.bytes_buffered = 0
        if self._nack is not None:
            self._nack.reset()

    def _clamp(self, delay: float) -> float:
        return min(self.config.max_delay, max(self.config.min_delay, delay))

    @property
    def played_sequence(self) -> int | None:
        """The 16-bit sequence number the buffer has played or skipped up to (None before any)."""
        return None if self._played_seq is None else self._played_seq & 0xFFFF

    @property
    def rtt(self) -> float:
        return self._nack.rtt if self._nack is not None else 0.0

    @rtt.setter
    def rtt(self, value: float) -> None:
        """Round-trip time (from RTCP reports) that spaces NACK retries."""
        if self._nack is not None:
            self._nack.rtt = value

    # --- input ---------------------------------------------------------------

    def insert(self, packet: RtpPacket, now: float, retransmitted: bool | None = None) -> None:
        """Take one packet (original or unwrapped RTX) that arrived at ``now``.

        ``retransmitted``: whether it came as a retransmission (RTX), when the
        caller knows; an original that was only reordered past its NACK then
        does not count as an answer to it.
        """
        m = self.metrics
        m.packets_received += 1
        self._now = max(self._now, now)
        if self.ssrc is None:
            self.ssrc = packet.ssrc
        elif packet.ssrc != self.ssrc:
            m.packets_dropped += 1
            return
        seq16 = packet.sequence_number
        seq = self._seq.peek(seq16)  # unwrapped, without moving the reference yet
        if self._highest is not None and abs(seq - self._highest) > self.config.max_seq_jump:
            # A far jump either way: believe it only when the next packet
            # follows it (RFC 3550 appendix A.1 does the same).
            if self._jump_candidate != (seq16 - 1) & 0xFFFF:
                self._jump_candidate = seq16
                m.packets_dropped += 1
                return
            self._reset(now, "sequence number jump")
        self._jump_candidate = None
        if self._played_seq is not None and seq <= self._played_seq:
            self._arrived_after_play(seq, packet, now, retransmitted)
            return
        seq = self._seq.unwrap(seq16)
        if seq in self._seq_key:
            m.packets_duplicate += 1
            return
        ts = self._ts.unwrap(packet.timestamp)
        transit = now - ts / self.config.clock_rate
        key = ts if self.config.video else seq
        if self._played_key is not None and key <= self._played_key:
            if self.config.video and self._played_key - key > self.config.clock_rate:
                # A new packet a second or more of media behind what played:
                # the sender's timeline went backwards; start over with it.
                # Its sequence numbers did not jump: what played stays played.
                played, unwrapper, highest = self._played_seq, self._seq, self._highest
                self._reset(now, "timestamp jump backwards")
                self._seq, self._played_seq, self._highest = unwrapper, played, highest
                m.packets_received -= 1
                self.insert(packet, now)
                return
            self._arrived_after_skip(seq, transit, now, retransmitted)
            return
        retries, first_nack = 0, None
        if self._nack is not None:
            first_nack = self._nack.first_nack(seq)
            retries, given_up = self._nack.handle_packet(seq, now, retransmitted)
            if retries:
                m.packets_recovered += 1
            if given_up:
                self._request_keyframe(now, "loss beyond the NACK window")
        if self._highest is not None and seq > self._highest:
            self._account_loss(seq - self._highest - 1)
        if self._highest is None or seq > self._highest:
            self._highest = seq
        self._observe(transit, retries, first_nack, retransmitted, now)
        frame = self._frames.get(key)
        if frame is None:
            frame = self._frames[key] = _Frame(key, ts, now)
            bisect.insort(self._order, key)
        self._add(frame, seq, packet)
        self._enforce_bounds(now)

    def _arrived_after_play(self, seq: int, packet: RtpPacket, now: float, retransmitted: bool | None) -> None:
        # Its place was played or skipped past without it (late), or it is a
        # copy of a packet that played or came late already (a duplicate,
        # which says nothing).  Video frames leave as soon as they can be
        # decoded, so a copy usually comes after its original played.
        nacked = self._missed.pop(seq, None)
        if nacked is None:
            self.metrics.packets_duplicate += 1
            return
        self.metrics.packets_late += 1
        self._missed[seq] = None  # a further copy is a duplicate
        transit = now - self._ts.peek(packet.timestamp) / self.config.clock_rate
        self._observe(transit, *nacked, retransmitted, now)

    def _arrived_after_skip(self, seq: int, transit: float, now: float, retransmitted: bool | None) -> None:
        # Its frame was skipped before it came.  It still counts as arrived,
        # or the numbers up to it would be NACKed in vain.
        self.metrics.packets_late += 1
        retries, first_nack = 0, None
        if self._nack is not None:
            first_nack = self._nack.first_nack(seq)
            retries = self._nack.handle_packet(seq, now, retransmitted)[0]
        if self._highest is None or seq > self._highest:
            self._highest = seq
        self._missed[seq] = None
        self._trim_missed()
        self._observe(transit, retries, first_nack, retransmitted, now)

    def _account_loss(self, missing: int) -> None:
        # An exponential moving average over sequence numbers: ``missing``
        # lost, then one arrived (a reordered one later is not credited back).
        keep = 1.0 - _LOSS_WEIGHT
        loss = self.metrics.loss_rate
        for _ in range(min(missing, 100)):
            loss = loss * keep + _LOSS_WEIGHT
        self.metrics.loss_rate = loss * keep

    def _add(self, frame: _Frame, seq: int, packet: RtpPacket) -> None:
        frame.packets[seq] = packet
        self._seq_key[seq] = frame.key
        if seq < frame.first:
            frame.first = seq
        if packet.marker or not self.config.video:
            frame.last = seq
        payload = packet.payload
        if self._is_frame_start is not None and self._is_frame_start(payload):
            frame.start_seq = seq
        if self._is_keyframe is not None and not frame.keyframe:
            frame.keyframe = self._is_keyframe(payload)
        size = len(packet.data)
        frame.size += size
        self.metrics.packets_buffered += 1
        self.metrics.bytes_buffered += size

    def _observe_transit(self, transit: float, now: float) -> None:
        bucket = int(now // _BUCKET)
        buckets = self._buckets
        old = buckets.get(bucket)
        if old is None:
            buckets[bucket] = transit
            for b in [b for b in buckets if b <= bucket - _BUCKETS]:
                del buckets[b]
            self._base = min(buckets.values())
        elif transit < old:
            buckets[bucket] = transit
        base = self._base
        if base is None or transit < base:
            self._base = base = transit
        self._excess.append(transit - base)
        self._since_quantile += 1
        if self._since_quantile >= _QUANTILE_EVERY or len(self._excess) < _QUANTILE_EVERY:
            self._since_quantile = 0
            values = sorted(self._excess)
            self._excess_q = values[min(len(values) - 1, int(len(values) * self.config.delay_quantile))]
            if self._nack is not None:
                self._nack.jitter = self._excess_q
            self._update_desired(now)
        self._update_target(now)

    def _observe(self, transit: float, retries: int, first_nack: float | None, retransmitted: bool | None,
                 now: float) -> None:
        # A first copy (one never NACKed, or an original that was only
        # reordered past its NACK) is the path's jitter: it joins the excess
        # transit window, even when it came after its place played (a single
        # late one must not set the target on its own).  A packet that
        # answered the first NACK of its number measures the NACK response
        # time; later rounds say nothing of it (the answer may be to an
        # earlier NACK), nor does a copy of a played packet.
        if not retries or retransmitted is False:
            self._observe_transit(transit, now)
        elif retries == 1 and first_nack is not None:
            self._responses.append((now, now - first_nack))
            self._response_until = now  # recompute

    def _update_desired(self, now: float) -> None:
        self._desired = self._clamp(self._excess_q)

    def _response_time(self) -> float:
        """How long after its first NACK a retransmission comes: the ``recovery_quantile`` of the
        recent answers (the last ``recovery_window``, none older than ``recovery_memory``), at
        least the round trip plus the jitter (before any is measured, or when the path grew
        slower than the answers of the last seconds say)."""
        now = self._now
        if now >= self._response_until:
            cfg = self.config
            recent = [r for t, r in self._responses if now - t < cfg.recovery_memory]
            if recent:
                values = sorted(recent)
                self._response_q = values[min(len(values) - 1, int(len(values) * cfg.recovery_quantile))]
                oldest = next(t for t, _ in self._responses if now - t < cfg.recovery_memory)
                self._response_until = oldest + cfg.recovery_memory  # the oldest expires
            else:
                self._response_q, self._response_until = 0.0, float("inf")
        response = self._response_q
        if self._nack is not None:
            response = max(response, self._nack.rtt + self._excess_q)
        self.metrics.nack_response = response
        return response

    def _update_target(self, now: float) -> None:
        m = self.metrics
        elapsed = max(0.0, now - self._target_updated)
        self._target_updated = now
        excess = m.target_delay - self._desired
        if excess <= 0:
            m.target_delay = self._desired
        else:
            # Shed slowly when close to the need, fast when far above it (a
            # loss burst is over): the buffer must not stay full.
            rate = max(self.config.decay_rate, excess / self.config.decay_time)
            m.target_delay = max(self._desired, m.target_delay - rate * elapsed)

    # --- output --------------------------------------------------------------

    def _due(self, frame: _Frame) -> float:
        assert self._base is not None
        return self._base + frame.ts / self.config.clock_rate + self.metrics.target_delay

    def _complete(self, frame: _Frame) -> bool:
        last = frame.last
        if last is None or len(frame.packets) != last - frame.first + 1:
            return False
        if not self.config.video or frame.start_seq == frame.first:
            return True
        before = frame.first - 1
        if before in self._seq_key:
            return True  # the packet before belongs to another frame
        return self._played_seq == before or (self._played_seq is None and self._is_frame_start is None)

    def pop(self, now: float) -> Frame | None:
        """The next frame if it may leave at ``now``; skips what can no longer play."""
        self._now = max(self._now, now)
        self.handle_timeout(now)
        while self._order:
            frame = self._frames[self._order[0]]
            if self._base is None:
                return None
            if now < self._release_time(frame):
                if self._overdue == frame.key and self._keyframe_waiting():
                    self._consume(frame, skipped=True)  # a key frame overtook its recovery
                    self._broken(now, "frame not recovered before a key frame")
                    continue
                return None
            if self._overdue != frame.key and self._recovery_deadline(frame) is not None \
                    and now < self._due(frame) + self.config.max_delay and not self._playable(frame):
                # Its recovery is late: ask for a key frame and take whichever comes first.
                self._overdue = frame.key
                self._request_keyframe(now, "frame not recovered in time")
                continue
            if not self._complete(frame):
                self._consume(frame, skipped=True)
                self._broken(now, "frame incomplete at its playout time")
                continue
            played = self._played_seq
            gap = self._gap or (played is not None and frame.first != played + 1)
            if self._keyframes and not frame.keyframe and (gap or self._need_keyframe):
                self._consume(frame, skipped=True)
                self._broken(now, "frame needs a key frame after a gap")
                continue
            self._consume(frame, skipped=False)
            if frame.keyframe:
                self._need_keyframe = False
            self._gap = False
            self.metrics.frames_popped += 1
            self.metrics.delay_total += now - frame.arrived
            seqs = sorted(frame.packets)
            return Frame(
                timestamp=frame.ts & 0xFFFFFFFF,
                packets=[frame.packets[s] for s in seqs],
                keyframe=frame.keyframe,
                first_sequence=seqs[0],
                last_sequence=seqs[-1],
                after_gap=gap,
            )
        return None

    def _playable(self, frame: _Frame) -> bool:
        if not self._complete(frame):
            return False
        if not self._keyframes or frame.keyframe:
            return True
        played = self._played_seq
        gap = self._gap or (played is not None and frame.first != played + 1)
        return not (gap or self._need_keyframe)

    def _release_time(self, frame: _Frame) -> float:
        """When the first frame leaves: played, or skipped if it cannot play by then.

        Audio: at its due time.  Video that can be decoded now (complete, and
        after what played or a key frame): at once, as nothing it needs is
        missing.  Video that cannot: when what it lacks can no longer come
        (:meth:`_recovery_deadline`), or at its due time if nothing it lacks
        is on its way (then waiting covers only the path's reordering).
        """
        due = self._due(frame)
        if not self.config.video:
            return due
        if self._playable(frame):
            return -math.inf
        if self._keyframes and self._need_keyframe and not frame.keyframe:
            # Decoding waits for a key frame: it can never play.  It goes at once when a complete
            # key frame waits behind it, else when due: the key frame may be on its way, reordered
            # (an earlier one, or this very frame with its first packet missing).
            return -math.inf if self._keyframe_waiting() else due
        if self._tail_coming(frame) or self._overdue == frame.key:
            # Nothing after it has come: nothing else could play meanwhile, and a sender's
            # pacer may spread a large frame over far longer than a round trip (on a short
            # path).  Or its recovery is late and a key frame was asked for: the first of the
            # two to come plays.
            return due + self.config.max_delay
        deadline = self._recovery_deadline(frame)
        return due if deadline is None else max(due, deadline)

    def _keyframe_waiting(self) -> bool:
        """Whether a complete key frame is buffered behind the first frame."""
        frames = self._frames
        return any(frames[key].keyframe and self._complete(frames[key]) for key in self._order[1:])

    def _tail_coming(self, frame: _Frame) -> bool:
        return frame.last is None and self._highest == max(frame.packets)

    def _recovery_deadline(self, frame: _Frame) -> float | None:
        """Until when the first frame waits for the numbers it lacks that are NACKed (or about to
        be): as many NACK rounds after the latest one's first NACK as :meth:`_rounds` says, the
        last answered within the measured response time; None when nothing it lacks is on its way.
        """
        nack = self._nack
        if nack is None:
            return None
        played = self._played_seq
        low = frame.first if played is None else played + 1
        if frame.last is not None:
            high = frame.last
        elif len(self._order) > 1:
            high = self._frames[self._order[1]].first - 1
        else:
            high = self._highest if self._highest is not None else low
        first_nack = nack.latest_first_nack(low, high)
        if first_nack is None:
            return None
        return first_nack + (self._rounds() - 1) * nack.retry_interval + self._response_time()

    def _rounds(self) -> int:
        """NACK rounds a frame behind a gap waits for: enough that the measured loss rate leaves
        under 1 % of its numbers unanswered (a retransmission is lost as often as the original),
        at least two: a skip costs every frame until a key frame, a wait only a short freeze,
        and a first answer later than most must not cost a skip."""
        rounds = _MIN_ROUNDS
        loss = self.metrics.loss_rate
        residual = loss ** rounds
        while residual > _RESIDUAL_LOSS and rounds < _MAX_ROUNDS:
            rounds += 1
            residual *= loss
        return rounds

    def _broken(self, now: float, reason: str) -> None:
        self._gap = True
        if self._keyframes:
            self._need_keyframe = True
            self._request_keyframe(now, reason)

    def _consume(self, frame: _Frame, skipped: bool) -> None:
        m = self.metrics
        del self._frames[frame.key]
        self._order.pop(bisect.bisect_left(self._order, frame.key))
        for seq in frame.packets:
            del self._seq_key[seq]
        m.packets_buffered -= len(frame.packets)
        m.bytes_buffered -= frame.size
        high = max(frame.packets) if frame.last is None else frame.last
        self._remember_missed(frame, high)
        self._trim_missed()
        if self._played_seq is not None and high > self._played_seq:
            m.packets_lost += high - self._played_seq - len(frame.packets)
        elif self._played_seq is None:
            m.packets_lost += high - frame.first + 1 - len(frame.packets)
        if self._played_seq is None or high > self._played_seq:
            self._played_seq = high
        self._played_key = frame.key
        if skipped:
            m.frames_skipped += 1
        if self._nack is not None:
            self._nack.forget_through(self._played_seq)

    def _remember_missed(self, frame: _Frame, high: int) -> None:
        # The numbers this frame plays past without them, and whether they
        # were NACKed, so that one arriving later is read right.
        played = self._played_seq
        low = frame.first if played is None else played + 1
        missed = self._missed
        nack = self._nack
        for seq in range(max(low, high - _MISSED_KEPT), high + 1):
            if seq not in frame.packets and seq not in missed:
                missed[seq] = (nack.retries(seq), nack.first_nack(seq)) if nack is not None else (0, None)

    def _trim_missed(self) -> None:
        missed = self._missed
        while len(missed) > _MISSED_KEPT:
            del missed[next(iter(missed))]

    def _enforce_bounds(self, now: float) -> None:
        m = self.metrics
        cfg = self.config
        while self._order and (m.packets_buffered > cfg.max_packets or m.bytes_buffered > cfg.max_bytes):
            self._consume(self._frames[self._order[0]], skipped=True)
            self._broken(now, "jitter buffer full")

    def _reset(self, now: float, reason: str) -> None:
        self.metrics.resets += 1
        self.metrics.frames_skipped += len(self._frames)
        self._reset_stream()
        self._gap = True
        if self._keyframes:
            self._request_keyframe(now, reason)

    def _request_keyframe(self, now: float, reason: str) -> None:
        if not self.config.video or self.ssrc is None:
            return
        if now - self._last_keyframe_request < self.config.keyframe_interval:
            return
        self._last_keyframe_request = now
        self.metrics.keyframe_requests += 1
        self._events.append(KeyFrameRequested(self.ssrc, reason))

    def handle_timeout(self, now: float) -> None:
        """Run the NACK timers (also done by :meth:`pop`)."""
        if self._nack is None or self.ssrc is None:
            return
        deadline = self._nack.next_deadline()
        if deadline is None or deadline > now:
            return
        to_nack, given_up = self._nack.poll(now)
        if to_nack:
            self.metrics.nacks_sent += len(to_nack)
            self._events.append(NackRequested(self.ssrc, tuple(s & 0xFFFF for s in to_nack)))
        if given_up:
            self._request_keyframe(now, "NACK retries exhausted")

    def next_deadline(self) -> float | None:
        """When :meth:`pop` (or :meth:`handle_timeout`) should next be called."""
        deadlines = []
        if self._order and self._base is not None:
            release = self._release_time(self._frames[self._order[0]])
            deadlines.append(self._now if release == -math.inf else release)  # -inf: at once
        if self._nack is not None:
            d = self._nack.next_deadline()
            if d is not None:
                deadlines.append(d)
        return min(deadlines) if deadlines else None

    def poll_event(self) -> JitterEvent | None:
        return self._events.popleft() if self._events else None

    def __len__(self) -> int:
        """Packets held."""
        return self.metrics.packets_buffered
