"""The send path of a media transport: history, pacing, transport-wide numbers, probing.

Per SSRC we send, an :class:`OutgoingStream` keeps a
:class:`~netcore.rtp.history.SendHistory` (NACKs are answered from it, RTX-
wrapped when RTX is negotiated) and an :class:`~netcore.rtp.reports.RtcpReporter`
(the sender info of our SR). :class:`Sender` puts every packet through the
:class:`~netcore.cc.Pacer` (audio and retransmissions first, video at the
pacing rate), stamps the MID and transport-wide sequence number header
extensions as a packet actually leaves (the estimator needs the send time
of each number, in order), tells the
:class:`~netcore.cc.BandwidthEstimator` and hands the plain packet to the
transport, which protects it.

Probing (docs/cc.md): while a :class:`~netcore.cc.ProbeCluster` runs, every
packet sent is tagged with its id and padding fills the rest of its rate,
on the RTX stream when there is one (padding-only RTX packets, which a
receiver drops without touching the media stream), else as padding-only
packets on a video stream's own SSRC: then the sender shifts that stream's
later sequence numbers by one per padding packet, so the receiver sees one
continuous sequence (``seq_offset``).
"""

from __future__ import annotations

from collections import deque

from netcore.cc import BandwidthEstimator, Pacer, ProbeCluster
from netcore.cc.probe import CLUSTER_GAP
from netcore.errors import UsageError
from netcore.peer.config import MediaConfig, SendLayer, TransportConfig
from netcore.rtp.extensions import URI_REPAIRED_RTP_STREAM_ID, URI_RTP_STREAM_ID
from netcore.rtp.history import SendHistory
from netcore.rtp.packet import RtpPacket
from netcore.rtp.reports import RtcpReporter
from netcore.rtp.rtx import wrap_rtx

__all__ = ["OutgoingStream", "Sender", "PADDING_SIZE"]

PADDING_SIZE = 255  # RFC 3550 section 5.1: the padding count is one octet
HISTORY_SIZE = 1024
RETRANSMIT_SHARE = 0.25  # of the target bitrate, over one second, for retransmissions
MIN_RETRANSMIT_INTERVAL = 0.02
# From this share of a stream's packets repaired on (the receiver's NACKs say what it lacks) a repair goes out
# twice: a repair is lost as often as any packet, and a lost one costs the frame a whole NACK round more.
REPAIR_COPY_LOSS = 0.02
REPAIR_WINDOW = 1.0  # seconds over which that share is counted
RTT_SAMPLES = 16  # round trip samples (one per RTCP report: several seconds) whose minimum spaces repairs
PADDING_TICK = 0.002  # a running probe tops its bytes up to its rate this often (and this far ahead)


class RepairShare:
    """The share of a stream's packets that were repaired (NACKed and resent), over the last whole window.

    Counted from the NACKs, not from transport-wide feedback: it needs no TWCC, counts only the
    stream that is NACKed (audio is not) and reads as the path's loss as the receiver sees it.
    The window closes at the first repair after :data:`REPAIR_WINDOW`: after a clean spell the
    first repair closes a long window with one repair in it, and reads low.
    """

    __slots__ = ("share", "_start", "_sent", "_repaired")

    def __init__(self) -> None:
        self.share = 0.0
        self._start: float | None = None  # when the open window began
        self._sent = 0  # the stream's packets_sent then
        self._repaired = 0  # repairs in the open window

    def repaired(self, now: float, packets_sent: int) -> float:
        """One packet of the stream, which has sent ``packets_sent``, is repaired now; the share."""
        if self._start is None:
            self._start, self._sent = now, packets_sent
        elif now - self._start >= REPAIR_WINDOW:
            sent = packets_sent - self._sent
            self.share = self._repaired / sent if sent > 0 else 0.0
            self._start, self._sent, self._repaired = now, packets_sent, 0
        self._repaired += 1
        return self.share


class OutgoingStream:
    """One SSRC we send (and its RTX stream); ``rid``: the simulcast stream it is (RFC 8851), or None."""

    __slots__ = ("media", "ssrc", "rtx_ssrc", "rid", "rtx_payload_types", "audio", "history", "reporter",
                 "seq_offset", "last_sequence", "last_timestamp", "rtx_sequence", "packets_sent", "repairs")

    def __init__(self, media: MediaConfig, config: TransportConfig, rtx_start: int,
                 layer: SendLayer | None = None) -> None:
        assert media.send_ssrc is not None
        self.media = media
        self.ssrc = layer.ssrc if layer is not None else media.send_ssrc
        self.rid = layer.rid if layer is not None else None
        self.rtx_payload_types = {c.payload_type: c.rtx_payload_type for c in media.codecs
                                  if c.rtx_payload_type is not None}
        rtx_ssrc = layer.rtx_ssrc if layer is not None else media.send_rtx_ssrc
        self.rtx_ssrc = rtx_ssrc if self.rtx_payload_types else None
        self.audio = media.kind == "audio"
        # RTX wrapping is done here, not by the history: the RTX sequence space
        # is shared with the padding this sender makes on the RTX stream.
        self.history = SendHistory(HISTORY_SIZE)
        self.reporter = RtcpReporter(self.ssrc, media.clock_rate, config.wallclock_offset)
        self.seq_offset = 0
        self.last_sequence: int | None = None
        self.last_timestamp = 0
        self.rtx_sequence = rtx_start & 0xFFFF
        self.packets_sent = 0
        self.repairs = RepairShare()

    def prepare(self, packet: RtpPacket) -> RtpPacket:
        """The packet with its sequence number moved past the padding sent on this SSRC."""
        if self.seq_offset:
            packet = rebuild(packet, sequence_number=(packet.sequence_number + self.seq_offset) & 0xFFFF)
        self.last_sequence = packet.sequence_number
        self.last_timestamp = packet.timestamp
        return packet

    def rtx(self, packet: RtpPacket) -> RtpPacket | None:
        """``packet`` wrapped for the RTX stream (RFC 4588 section 4), or None without RTX."""
        rtx_pt = self.rtx_payload_types.get(packet.payload_type)
        if self.rtx_ssrc is None or rtx_pt is None:
            return None
        wrapped = wrap_rtx(packet, rtx_pt, self.rtx_sequence, self.rtx_ssrc)
        self.rtx_sequence = (self.rtx_sequence + 1) & 0xFFFF
        return wrapped

    def padding(self) -> RtpPacket | None:
        """A padding-only packet: on the RTX stream, else on this SSRC (shifting later numbers)."""
        if self.rtx_ssrc is not None:
            rtx_pt = next(iter(self.rtx_payload_types.values()))
            packet = RtpPacket.build(payload_type=rtx_pt, sequence_number=self.rtx_sequence,
                                     timestamp=self.last_timestamp, ssrc=self.rtx_ssrc, padding=PADDING_SIZE)
            self.rtx_sequence = (self.rtx_sequence + 1) & 0xFFFF
            return packet
        if self.last_sequence is None or self.audio:
            return None
        self.seq_offset = (self.seq_offset + 1) & 0xFFFF
        self.last_sequence = (self.last_sequence + 1) & 0xFFFF
        return RtpPacket.build(payload_type=self.media.codecs[0].payload_type, sequence_number=self.last_sequence,
                               timestamp=self.last_timestamp, ssrc=self.ssrc, padding=PADDING_SIZE)


def rebuild(packet: RtpPacket, *, sequence_number: int | None = None,
            extensions: list[tuple[int, bytes]] | None = None) -> RtpPacket:
    """A copy of ``packet`` with another sequence number or header extension elements."""
    return RtpPacket.build(
        payload_type=packet.payload_type,
        sequence_number=packet.sequence_number if sequence_number is None else sequence_number,
        timestamp=packet.timestamp, ssrc=packet.ssrc, payload=packet.payload, marker=packet.marker,
        csrcs=packet.csrcs, extensions=packet.extensions if extensions is None else extensions,
        padding=packet.padding)


class Sender:
    """Queues, paces, numbers and probes what the transport sends; yields plain RTP to protect."""

    def __init__(self, config: TransportConfig, estimator: BandwidthEstimator) -> None:
        self.config = config
        self.estimator = estimator
        rtx_starts = iter(int.from_bytes(config.random(2), "big") for _ in range(len(config.media)))
        self.streams: dict[int, OutgoingStream] = {}
        for media in config.media:
            start = next(rtx_starts)
            if media.send_ssrc is not None:
                self._add_streams(media, start)
        self.pacer: Pacer[RtpPacket] = Pacer(estimator.target_bitrate)
        self.mid_id = config.mid_extension
        self.twcc_id = config.twcc_extension
        # RFC 8852 section 3: every packet of a simulcast stream names it (its RTX the stream it repairs)
        self.rid_id = config.extension_id(URI_RTP_STREAM_ID)
        self.rrid_id = config.extension_id(URI_REPAIRED_RTP_STREAM_ID)
        self._twcc_seq = int.from_bytes(config.random(2), "big")
        self.out: deque[bytes] = deque()
        self.probe: ProbeCluster | None = None
        self._probe_end = 0.0
        self._next_padding: float | None = None
        self._probe_start = 0.0
        self._probe_bytes = 0  # bytes of the running cluster sent so far, media and padding
        self._probe_poll_at: float | None = None
        self.packets_sent = 0
        self.bytes_sent = 0
        self.retransmissions = 0
        self.retransmissions_refused = 0
        self.repair_copies_sent = 0  # second copies of repairs (see REPAIR_COPY_LOSS)
        self._retransmitted: deque[tuple[float, int]] = deque()  # (when, bytes) over the last second
        self._retransmitted_bytes = 0
        self._rtts: deque[float] = deque(maxlen=RTT_SAMPLES)  # the latest round trip samples
        self.padding_sent = 0
        self.probes_sent = 0
        # A compiled path sending on this transport's behalf (netcore.sfu.fastpath.FastSubscriber): what it
        # sent is taken (drain) before this sender numbers, measures or answers anything itself.
        self.fast = None

    def add_stream(self, media: MediaConfig) -> None:
        """Send on an m-section added by a later offer/answer (``media.send_ssrc``)."""
        if media.send_ssrc is None or media.send_ssrc in self.streams:
            raise UsageError(f"mid {media.mid!r} has no new SSRC to send with")
        self._add_streams(media, int.from_bytes(self.config.random(2), "big"))

    def _add_streams(self, media: MediaConfig, rtx_start: int) -> None:
        """One stream per simulcast layer of ``media`` (RFC 8853), else one for its ``send_ssrc``."""
        for i, layer in enumerate(media.send_layers or (None,)):
            stream = OutgoingStream(media, self.config, rtx_start + 1000 * i, layer)
            self.streams[stream.ssrc] = stream

    # -- media ----------------------------------------------------------------------

    def send(self, packet: RtpPacket, now: float) -> None:
        stream = self.streams.get(packet.ssrc)
        if stream is None:
            raise UsageError(f"SSRC {packet.ssrc} is not one this transport sends")
        packet = stream.prepare(packet)
        stream.history.add(packet)
        stream.reporter.handle_rtp_sent(packet, now)
        stream.packets_sent += 1
        self.pacer.enqueue(packet, len(packet.data), now, audio=stream.audio)
        self.release(now)

    def retransmit(self, ssrc: int, lost: list[int], now: float) -> int:
        """Answer a NACK for ``ssrc`` from its history (RFC 4585 section 6.2.1); how many go out.

        Within the retransmission budget only (:data:`RETRANSMIT_SHARE` of
        the target over the last second): on a congested link most NACKs
        ask for what the queue dropped, and answering them all would add to
        the congestion that lost them.
        """
        stream = self.streams.get(ssrc)
        if stream is None:
            return 0
        if self.fast is not None:
            self.fast.fill_history(stream, lost)
        window = self._retransmitted
        while window and window[0][0] <= now - 1.0:
            self._retransmitted_bytes -= window.popleft()[1]
        budget = RETRANSMIT_SHARE * self.estimator.target_bitrate / 8 - self._retransmitted_bytes
        history = stream.history
        repaired: list[tuple[RtpPacket, int]] = []
        for seq in lost:
            original = history.repairable(seq, now)
            if original is None:
                continue
            # The RTX header adds 2 bytes; the RTX sequence number is spent only on what goes out.
            size = len(original.data) + (2 if stream.rtx_ssrc is not None else 0)
            if size > budget:
                self.retransmissions_refused += 1  # not marked as resent: a later NACK may still get it
                continue
            history.resent(original.sequence_number, now)
            self._repair(stream, original, size, now)
            budget -= size
            repaired.append((original, size))
            stream.repairs.repaired(now, stream.packets_sent)
        if self.config.repair_copies and stream.repairs.share >= REPAIR_COPY_LOSS:  # second copies after every first one, from what budget is left
            for original, size in repaired:
                if size > budget:
                    break
                self._repair(stream, original, size, now)
                budget -= size
                self.repair_copies_sent += 1
        count = len(repaired)
        self.retransmissions += count
        self.release(now)
        return count

    # From REPAIR_COPY_LOSS of a stream's packets repaired on, each of its repairs goes out twice. With loss
    # ``p`` a single repair fails with ``p`` and two with ``p**2``. A failed repair is seen by the receiver only
    # when it was due (a round trip plus the jitter after its NACK) and asked for again: on a 5 % lossy path
    # with 50-110 ms round trips those frames (and the frames held behind them in decode order) made the p99
    # of the call's latency. The second copy costs what the loss costs again in repair bytes, within the budget.

    def _repair(self, stream: OutgoingStream, original: RtpPacket, size: int, now: float) -> None:
        """Queue one copy of a repair of ``original`` (RTX-wrapped when negotiated)."""
        wrapped = stream.rtx(original)
        self._retransmitted.append((now, size))
        self._retransmitted_bytes += size
        # Retransmissions share the priority lane with audio: they are late already.
        self.pacer.enqueue(wrapped if wrapped is not None else original, size, now, audio=True)

    def rtt_measured(self, rtt: float) -> None:
        """A packet is resent at most once per the path's shortest recent round trip.

        A NACK that comes sooner after the repair was sent than any round trip can take was sent
        before the repair could arrive: it is stale. One that comes later may be stale too (the
        receiver asks again a round trip plus the jitter after its last NACK, the repair may take
        longer) or ask for a repair that was lost; answering it costs a duplicate in the first case,
        ignoring it costs a whole NACK round in the second. The latest sample (it swings with the
        jitter, one sample may be twice the shortest) ignored repairs that were lost.
        """
        self._rtts.append(rtt)
        interval = max(min(self._rtts), MIN_RETRANSMIT_INTERVAL)
        for stream in self.streams.values():
            stream.history.min_interval = interval

    def release(self, now: float) -> None:
        """Send what the pacer lets out now."""
        for packet in self.pacer.poll(now):
            self._emit(packet, now)

    def _emit(self, packet: RtpPacket, now: float) -> None:
        probe = self.probe
        cluster = probe.cluster_id if probe is not None and now < self._probe_end else None
        if cluster is not None:
            self._probe_bytes += len(packet.data)
        mid_id, twcc_id = self.mid_id, self.twcc_id
        if mid_id is not None or twcc_id is not None:
            stream = self.streams.get(packet.ssrc)
            rid_ids = (self.rid_id, self.rrid_id)
            elements = [e for e in packet.extensions if e[0] != mid_id and e[0] != twcc_id and e[0] not in rid_ids]
            rid_id = self.rid_id
            if stream is None:  # an RTX packet: the MID (and RID) of the stream it repairs
                rid_id = self.rrid_id
                stream = next((s for s in self.streams.values() if s.rtx_ssrc == packet.ssrc), None)
            if mid_id is not None and stream is not None:
                elements.append((mid_id, stream.media.mid.encode()))
            if stream is not None and stream.rid is not None and rid_id is not None:
                elements.append((rid_id, stream.rid.encode()))
            if twcc_id is not None:
                seq = self._next_twcc(now)
                elements.append((twcc_id, seq.to_bytes(2, "big")))
            packet = rebuild(packet, extensions=elements)
            if twcc_id is not None:
                self.estimator.packet_sent(seq, len(packet.data), now, cluster)
        self.packets_sent += 1
        self.bytes_sent += len(packet.data)
        self.out.append(packet.data)

    def _next_twcc(self, now: float) -> int:
        """The next transport-wide number; a compiled path's packets are told to the estimator first."""
        fast = self.fast
        if fast is not None:
            fast.drain(now)
            self._twcc_seq = fast.twcc_seq
        seq = self._twcc_seq
        self._twcc_seq = (seq + 1) & 0xFFFF
        if fast is not None:
            fast.twcc_seq = self._twcc_seq
        return seq

    # -- probing --------------------------------------------------------------------

    def poll_probe(self, now: float) -> None:
        """Start the estimator's next probe cluster if one is due (docs/cc.md)."""
        if self.probe is not None or self.twcc_id is None or not self.packets_sent:
            return  # probes ride on media: none before the first packet
        cluster = self.estimator.poll_probe(now)
        if cluster is None:
            return
        stream = self._padding_stream()
        self.probe = cluster
        self.probes_sent += 1
        self._probe_start = now
        self._probe_bytes = 0
        self._probe_end = now + cluster.duration
        self._probe_poll_at = self._probe_end + CLUSTER_GAP
        if stream is not None:
            self._next_padding = now

    def _padding_stream(self) -> OutgoingStream | None:
        video = [s for s in self.streams.values() if not s.audio]
        for stream in video:
            if stream.rtx_ssrc is not None:
                return stream
        for stream in video:
            if stream.last_sequence is not None:
                return stream
        return None

    def handle_timeout(self, now: float) -> None:
        if self.fast is not None:
            self.fast.drain(now)
        self.release(now)
        if self.probe is not None:
            if self._next_padding is not None and self._next_padding <= now < self._probe_end:
                self._pad(self.probe, now)
            if now >= self._probe_end:
                self.probe = None
                self._next_padding = None
        if self._probe_poll_at is not None and now >= self._probe_poll_at:
            self._probe_poll_at = None
        self.poll_probe(now)

    def _pad(self, probe: ProbeCluster, now: float) -> None:
        """Padding up to what the cluster's rate owes by the next tick, whatever the media sent.

        Counting what was actually sent (not spacing padding for the rate the
        media leaves) keeps the cluster at its rate when the encoder sends
        less than the target, as it does at the start of a call, and when
        the timer fires late (the padding owed goes out at once).
        """
        stream = self._padding_stream()
        horizon = min(now + PADDING_TICK, self._probe_end) - self._probe_start
        owed = probe.rate * horizon / 8 - self._probe_bytes
        while stream is not None and owed > 0:
            padding = stream.padding()
            if padding is None:
                break
            self.padding_sent += 1
            self._emit(padding, now)
            owed -= len(padding.data)
        self._next_padding = now + PADDING_TICK

    def next_deadline(self, now: float) -> float | None:
        deadlines = [d for d in (self.pacer.next_deadline(now), self._probe_poll_at) if d is not None]
        if self.probe is not None:
            deadlines.append(self._probe_end)
            if self._next_padding is not None:
                deadlines.append(self._next_padding)
        return min(deadlines) if deadlines else None

    def set_rate(self, target: float) -> None:
        self.pacer.set_rate(target)
