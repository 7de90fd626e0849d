"""The transport half of a WebRTC peer connection, sans-IO: ICE, DTLS-SRTP, RTP/RTCP, congestion control.

One :class:`MediaTransport` per BUNDLE group (on the call server, one per
participant). It follows the contract of docs/architecture.md::

    transport.handle_datagram(Receive(data, source, our_socket), now)
    transport.handle_timeout(now)
    transport.poll_transmit() -> Transmit     # source = the ICE socket to send from
    transport.poll_event()    -> TransportEvent
    transport.next_deadline()
    transport.send_rtp(packet, now); transport.request_keyframe(ssrc, now); transport.close(now)

It composes, without sharing state through ``self``:

* an ICE :class:`~netcore.ice.agent.Agent` (full, or lite for a server),
  which owns the socket addresses: every datagram goes to it first, and
  what it delivers as application data is classified by its first byte
  (RFC 7983 through :func:`netcore.demux.classify`);
* a :class:`~netcore.dtls.connection.DtlsConnection`, client or server as
  ``a=setup`` said, started when ICE selects its first pair (a server's
  flights wait in a short queue until ICE has a path to send them on);
* an :class:`~netcore.srtp.session.SrtpSession` keyed from DTLS (RFC 5764);
* :class:`~netcore.peer.demux.RtpDemuxer` (MID, SSRC, payload type; RTX
  unwrapped to its original), :class:`~netcore.peer.receiver.Receiver`
  (NACK generation, TWCC arrivals), :class:`~netcore.peer.sender.Sender`
  (history, pacer, transport-wide numbers, probes) and the
  :class:`~netcore.cc.BandwidthEstimator`;
* RTCP per :mod:`netcore.peer.rtcp`: regular SR/RR + SDES CNAME at the RFC
  3550 interval, feedback when due (Immediate Feedback mode, RFC 4585
  section 3.5.1), reduced-size only when negotiated.

States (:class:`TransportState`)::

    NEW --start--> CHECKING --ICE PathSelected--> HANDSHAKING --DTLS done--> CONNECTED
    any --ICE failed / path lost / DTLS failed--> FAILED
    any --close() / peer's close_notify--> CLOSED

Malformed or unauthentic input from the peer is counted in :attr:`stats`
(and in the ICE, DTLS and SRTP layers' own counters) and dropped: nothing
raises out of :meth:`handle_datagram` or :meth:`handle_timeout`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import deque

from netcore.cc import BandwidthEstimator
from netcore.demux import PacketKind, classify
from netcore.dtls.connection import DtlsConnection
from netcore.dtls.events import ConnectionClosed, HandshakeCompleted, HandshakeFailed
from netcore.dtls.events import DataReceived as DtlsDataReceived
from netcore.errors import UsageError
from netcore.ice import events as ice_events
from netcore.ice.agent import Agent
from netcore.net import Receive, Transmit
from netcore.peer.config import MediaConfig, TransportConfig
from netcore.peer.demux import RtpDemuxer
from netcore.peer.liveness import FeedbackWatch
from netcore.peer.events import (BitrateChanged, CandidateGathered, Direction, GatheringCompleted,
                                 KeyFrameRequested, PathChanged, RtcpReceived, RtpReceived, TransportClosed,
                                 TransportConnected, TransportEvent, TransportFailed)
from netcore.peer.receiver import Receiver
from netcore.peer.rtcp import RtcpTimer
from netcore.peer.sender import Sender
from netcore.rtp.errors import RtcpParseError, RtpParseError
from netcore.rtp.extensions import URI_REPAIRED_RTP_STREAM_ID, URI_RTP_STREAM_ID
from netcore.rtp.feedback import Fir, Nack, Pli, Remb, TransportFeedback
from netcore.rtp.packet import RtpPacket
from netcore.rtp.reports import RtcpReporter
from netcore.rtp.rtcp import (SDES_CNAME, Bye, ReceiverReport, Sdes, SdesChunk, SenderReport, parse_rtcp,
                              serialize_rtcp)
from netcore.rtp.rtx import unwrap_rtx
from netcore.sdp.candidate import Candidate
from netcore.srtp.session import SrtpSession

__all__ = ["MediaTransport", "TransportState", "TransportStats", "BITRATE_STEP"]

BITRATE_STEP = 0.05  # a BitrateChanged event when the target moves by more than this share
MAX_HELD = 16  # DTLS datagrams held until ICE has a path


class TransportState(enum.Enum):
    NEW = "new"
    CHECKING = "checking"
    HANDSHAKING = "handshaking"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


class TransportStats:
    """What the transport received, sent and dropped, by cause."""

    __slots__ = (
        "dtls_received", "rtp_received", "rtcp_received", "unknown_received", "dropped_before_keys",
        "rtp_parse_errors", "rtcp_parse_errors", "unroutable", "padding_received", "rtx_received",
        "nacks_sent", "nack_copies_sent", "nacks_received", "plis_sent", "plis_received", "firs_sent", "firs_received",
        "twcc_sent", "twcc_received", "remb_received", "rtcp_sent", "send_dropped",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def __repr__(self) -> str:
        return "TransportStats(" + ", ".join(f"{n}={getattr(self, n)}" for n in self.__slots__) + ")"


class MediaTransport:
    """ICE + DTLS-SRTP + RTP/RTCP for one BUNDLE group, sans-IO."""

    def __init__(self, config: TransportConfig, *, agent: Agent | None = None) -> None:
        self.config = config
        self.ice = agent or Agent(
            config.ice_controlling, lite=config.ice_lite, stun_servers=config.stun_servers,
            turn_servers=config.turn_servers, relay_only=config.ice_relay_only, ufrag=config.local_ufrag, pwd=config.local_pwd,
            random=config.random)
        self.dtls = DtlsConnection(
            config.dtls_role == "client", config.certificate,
            remote_fingerprints=list(config.remote_fingerprints) or None, random=config.random)
        self.srtp: SrtpSession | None = None
        self.state = TransportState.NEW
        self.stats = TransportStats()
        self.estimator = BandwidthEstimator(config.initial_bitrate, config.min_bitrate, config.max_bitrate)
        self.sender = Sender(config, self.estimator)
        send_ssrcs = [m.send_ssrc for m in config.media if m.send_ssrc is not None]
        self.rtcp_ssrc = config.rtcp_ssrc or (send_ssrcs[0] if send_ssrcs
                                              else int.from_bytes(config.random(4), "big") or 1)
        if self.rtcp_ssrc in self.sender.streams:
            self._reporter = self.sender.streams[self.rtcp_ssrc].reporter
        else:
            self._reporter = RtcpReporter(self.rtcp_ssrc, 90000, config.wallclock_offset)
        self.receiver = Receiver(self.rtcp_ssrc)
        self.demux = RtpDemuxer(config.media, config.mid_extension,
                                rid_extension=config.extension_id(URI_RTP_STREAM_ID),
                                rrid_extension=config.extension_id(URI_REPAIRED_RTP_STREAM_ID))
        self._twcc_id = config.twcc_extension
        self._timer = RtcpTimer(config.random, config.rtcp_min_interval)
        self._next_twcc: float | None = None
        self._watch = FeedbackWatch()  # unacknowledged sending moves the sending path (docs/peer.md)
        self._rtt_seen: float | None = None
        self._events: deque[TransportEvent] = deque()
        self._held: deque[bytes] = deque()
        self._recv_pair: object | None = None
        self._published = self.estimator.target_bitrate
        self._fir_seen: dict[int, int] = {}  # our SSRC -> last FIR sequence number taken
        self._fir_sent: dict[int, int] = {}  # remote SSRC -> our last FIR sequence number
        self.connected_at: float | None = None
        self._now = 0.0  # the latest input's time: the pacer's deadline is relative to it

    # -- inputs ---------------------------------------------------------------------

    def start(self, now: float, *, gather: bool = True) -> None:
        """Gather (the caller registered its sockets with ``ice.add_local_address``) and start checks.

        ``gather=False``: the agent handed in has already gathered (a peer
        connection gathers when it sets its local description, before the
        negotiation that configures this transport is complete).
        """
        if self.state is not TransportState.NEW:
            raise UsageError("start() once, on a new transport")
        self.state = TransportState.CHECKING
        config = self.config
        if gather:
            self.ice.gather(now)
        if config.remote_ufrag is not None and config.remote_pwd is not None:
            self.ice.set_remote_credentials(config.remote_ufrag, config.remote_pwd, now)
        for candidate in config.remote_candidates:
            self.ice.add_remote_candidate(candidate, now)
        if config.remote_end_of_candidates:
            self.ice.add_remote_candidate(None, now)
        self._drain_ice(now)

    def set_remote_credentials(self, ufrag: str, pwd: str, now: float) -> None:
        self.ice.set_remote_credentials(ufrag, pwd, now)
        self._drain_ice(now)

    def add_remote_candidate(self, candidate: Candidate | None, now: float) -> None:
        """A trickled remote candidate; ``None`` is end-of-candidates."""
        self.ice.add_remote_candidate(candidate, now)
        self._drain_ice(now)

    def handle_datagram(self, datagram: Receive, now: float) -> None:
        """A datagram arrived on one of the ICE sockets (``destination``); never raises on peer input."""
        self.ice.handle_datagram(datagram, now)
        self._drain_ice(now)

    def handle_timeout(self, now: float) -> None:
        self.ice.handle_timeout(now)
        self._drain_ice(now)
        deadline = self.dtls.next_deadline()
        if deadline is not None and deadline <= now:
            self.dtls.handle_timeout(now)
            self._drain_dtls(now)
        if self.state is TransportState.CONNECTED:
            self.sender.handle_timeout(now)
            self._flush_rtp(now)
            self._send_feedback(now)
            if self._timer.due(now):
                self._send_rtcp(self._report_packets(now), now)
                self._schedule_report(now)
            self._publish_bitrate()
            if self._watch.expired(now, self._rtt_seen) and self.ice.switch_path(1, "unacknowledged", now):
                self._drain_ice(now)

    def send_rtp(self, packet: RtpPacket, now: float) -> bool:
        """Send a media packet of one of our SSRCs (paced; audio first); False before the transport connected."""
        if self.state is not TransportState.CONNECTED:
            self.stats.send_dropped += 1
            return False
        self._now = now
        self.sender.send(packet, now)
        self._flush_rtp(now)
        return True

    def media_captured(self, ssrc: int, rtp_timestamp: int, capture_time: float) -> None:
        """A frame of our SSRC ``ssrc`` with ``rtp_timestamp`` was sampled at ``capture_time`` (the
        clock of ``now``): its sender reports' RTP timestamps follow that capture clock."""
        stream = self.sender.streams.get(ssrc)
        if stream is not None:
            stream.reporter.media_captured(rtp_timestamp, capture_time)

    def request_keyframe(self, ssrc: int, now: float, *, fir: bool = False) -> None:
        """Ask the sender of remote media SSRC ``ssrc`` for a key frame: a PLI (RFC 4585
        section 6.3.1), or with ``fir`` a FIR with a new sequence number (RFC 5104 section 4.3.1)."""
        if self.state is not TransportState.CONNECTED:
            return
        self._now = now
        if fir:
            sequence = self._fir_sent[ssrc] = (self._fir_sent.get(ssrc, -1) + 1) & 0xFF
            self.stats.firs_sent += 1
            self._send_feedback_packets([Fir(self.rtcp_ssrc, 0, [(ssrc, sequence)])], now)
        else:
            self.stats.plis_sent += 1
            self._send_feedback_packets([Pli(self.rtcp_ssrc, ssrc)], now)

    def forget_through(self, ssrc: int, sequence_number: int) -> None:
        """The receiver played or skipped remote media SSRC ``ssrc`` up to ``sequence_number``:
        NACKs stop asking for anything up to it (see :meth:`Receiver.forget_through`)."""
        self.receiver.forget_through(ssrc, sequence_number)

    def add_media(self, media: MediaConfig) -> None:
        """An m-section a later offer/answer added to the bundle (RFC 8829 section 5.2.2): its
        packets are routed and, when it sends, its SSRC sent; ICE, DTLS and SRTP stay as they are."""
        if any(m.mid == media.mid for m in self.config.media):
            raise UsageError(f"mid {media.mid!r} is in the bundle already")
        self.demux.add_media(media)
        if media.send_ssrc is not None:
            self.sender.add_stream(media)
        self.config = dataclasses.replace(self.config, media=self.config.media + (media,))

    def send_feedback(self, packets: list, now: float) -> None:
        """Send RTCP feedback of the caller's making (a forwarder's REMB for the streams it receives),
        alone with reduced-size RTCP, else behind a report (RFC 4585 section 3.5.2)."""
        if self.state is not TransportState.CONNECTED:
            return
        self._now = now
        self._send_feedback_packets(list(packets), now)

    def close(self, now: float) -> None:
        """BYE for our SSRCs, DTLS close_notify, then :class:`TransportClosed`."""
        if self.state in (TransportState.CLOSED, TransportState.FAILED):
            return
        if self.state is TransportState.CONNECTED:
            ssrcs = list(self.sender.streams) or [self.rtcp_ssrc]
            self._send_rtcp(self._report_packets(now) + [Bye(ssrcs)], now)
        self.dtls.close(now)
        self._flush_dtls(now)
        while self.dtls.poll_event() is not None:
            pass
        self.state = TransportState.CLOSED
        self._events.append(TransportClosed("closed locally"))

    # -- outputs --------------------------------------------------------------------

    def poll_transmit(self) -> Transmit | None:
        return self.ice.poll_transmit()

    def poll_event(self) -> TransportEvent | None:
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        # Asked after every datagram and timer the transport handles (a call server asks each of its
        # participants'): the earliest of its parts' deadlines, without building a list.
        state = self.state
        if state is TransportState.CLOSED or state is TransportState.FAILED:
            return None
        best = self.ice.next_deadline()
        d = self.dtls.next_deadline()
        if d is not None and (best is None or d < best):
            best = d
        if state is TransportState.CONNECTED:
            for d in (self.sender.next_deadline(self._now), self.receiver.next_deadline(), self._timer.next_report,
                      self._next_twcc if len(self.receiver.twcc) else None, self._watch.deadline(self._rtt_seen)):
                if d is not None and (best is None or d < best):
                    best = d
        return best

    @property
    def target_bitrate(self) -> float:
        """What the congestion controller lets us send, in bit/s (encoders follow it)."""
        return self.estimator.target_bitrate

    @property
    def local_fingerprint(self) -> str:
        return self.config.certificate.fingerprint()

    # -- ICE ------------------------------------------------------------------------

    def _drain_ice(self, now: float) -> None:
        self._now = now
        while (event := self.ice.poll_event()) is not None:
            if isinstance(event, ice_events.DataReceived):
                self._on_data(event, now)
            elif isinstance(event, ice_events.PathSelected):
                self._on_path_selected(event, now)
            elif isinstance(event, ice_events.CandidateGathered):
                self._events.append(CandidateGathered(event.candidate))
            elif isinstance(event, ice_events.GatheringCompleted):
                self._events.append(GatheringCompleted())
            elif isinstance(event, ice_events.ComponentFailed):
                self._fail("ICE failed: every candidate pair failed")
            elif isinstance(event, ice_events.ConnectionLost):
                self._fail(f"ICE lost the path ({event.reason})")

    def _on_path_selected(self, event: ice_events.PathSelected, now: float) -> None:
        pair = event.pair
        self._events.append(_path_changed(Direction.SEND, pair, event.reason))
        if self.state is TransportState.CHECKING:
            self.state = TransportState.HANDSHAKING
            if self.dtls.is_client:
                self.dtls.connect(now)
        while self._held:
            self.ice.send(self._held.popleft(), now)
        self._drain_dtls(now)

    def _on_data(self, event: ice_events.DataReceived, now: float) -> None:
        pair = event.pair
        if pair is not None and pair is not self._recv_pair:
            self._recv_pair = pair
            self._events.append(_path_changed(Direction.RECEIVE, pair, "received"))
        data = event.data
        kind = classify(data)
        if kind is PacketKind.RTP:
            self._on_rtp(data, now)
        elif kind is PacketKind.RTCP:
            self._on_rtcp(data, now)
        elif kind is PacketKind.DTLS:
            self.stats.dtls_received += 1
            if self.state in (TransportState.CLOSED, TransportState.FAILED):
                return
            self.dtls.handle_datagram(Receive(data), now)
            self._drain_dtls(now)
        else:
            self.stats.unknown_received += 1

    def _fail(self, reason: str) -> None:
        if self.state in (TransportState.CLOSED, TransportState.FAILED):
            return
        self.state = TransportState.FAILED
        self._events.append(TransportFailed(reason))

    # -- DTLS -----------------------------------------------------------------------

    def _drain_dtls(self, now: float) -> None:
        self._flush_dtls(now)
        while (event := self.dtls.poll_event()) is not None:
            if isinstance(event, HandshakeCompleted):
                self._on_handshake(event, now)
            elif isinstance(event, HandshakeFailed):
                self._fail(f"DTLS handshake failed: {event.reason}")
            elif isinstance(event, ConnectionClosed):
                if self.state not in (TransportState.CLOSED, TransportState.FAILED):
                    self.state = TransportState.CLOSED
                    self._events.append(TransportClosed(event.reason))
            elif isinstance(event, DtlsDataReceived):
                self.stats.unknown_received += 1  # no data channels on this transport yet
        self._flush_dtls(now)

    def _flush_dtls(self, now: float) -> None:
        while (transmit := self.dtls.poll_transmit()) is not None:
            if self.ice.sending_pair() is None:
                if len(self._held) < MAX_HELD:
                    self._held.append(transmit.data)  # the server's flight, before ICE has a path
            else:
                self.ice.send(transmit.data, now)

    def _on_handshake(self, event: HandshakeCompleted, now: float) -> None:
        if self.state is not TransportState.HANDSHAKING and self.state is not TransportState.CHECKING:
            return
        try:
            self.srtp = SrtpSession.from_dtls(self.dtls)
        except UsageError as exc:  # the peer did not agree on use_srtp
            self._fail(f"DTLS-SRTP not negotiated: {exc}")
            return
        self.state = TransportState.CONNECTED
        self.connected_at = now
        self._events.append(TransportConnected(event.srtp_profile or 0, event.peer_fingerprint))
        self._schedule_report(now)
        if self._twcc_id is not None:
            self._next_twcc = now + self.config.twcc_interval
        self.sender.poll_probe(now)

    # -- RTP in ---------------------------------------------------------------------

    def _on_rtp(self, data: bytes, now: float) -> None:
        self.stats.rtp_received += 1
        srtp = self.srtp
        if srtp is None or self.state is not TransportState.CONNECTED:
            self.stats.dropped_before_keys += 1
            return
        plain = srtp.unprotect_rtp(data)
        if plain is None:
            return  # counted in srtp.stats
        event = self._on_plain_rtp(plain, now)
        if event is not None:
            self._events.append(event)

    def replay_rtp(self, plain: bytes, now: float) -> RtpReceived | None:
        """An RTP packet that arrived at ``now`` on the current path and was unprotected (and forwarded) by a
        compiled receive path (netcore.sfu.fastpath): counted and recorded as :meth:`handle_datagram` would,
        its event returned instead of queued (the caller handles it now, in arrival order)."""
        self.stats.rtp_received += 1
        self._now = now
        return self._on_plain_rtp(plain, now)

    def _on_plain_rtp(self, plain: bytes, now: float) -> RtpReceived | None:
        try:
            packet = RtpPacket.parse(plain)
            if self._twcc_id is not None:
                raw = packet.extension(self._twcc_id)
                if raw is not None and len(raw) == 2:
                    self.receiver.twcc.record((raw[0] << 8) | raw[1], now, packet.ssrc)
            route = self.demux.route(packet)
            if route is None:
                self.stats.unroutable += 1
                return None
            media = route.media
            if route.rtx:
                if packet.payload_end == packet.payload_offset:
                    self.stats.padding_received += 1  # RTX padding of a probe
                    return None
                codec = media.rtx_codec(packet.payload_type)
                if codec is None or route.media_ssrc is None:
                    self.stats.unroutable += 1
                    return None
                original = unwrap_rtx(packet, codec.payload_type, route.media_ssrc)
                self.stats.rtx_received += 1
                self.receiver.packet(media, original, now, True)
                return RtpReceived(media.mid, original.ssrc, original, True, route.rid)
        except RtpParseError:
            self.stats.rtp_parse_errors += 1
            return None
        codec = media.codec(packet.payload_type)
        if codec is None:  # a payload type this m-section did not agree on
            self.stats.unroutable += 1
            return None
        self._reporter.handle_rtp_received(packet, now, codec.clock_rate)
        self.receiver.packet(media, packet, now, False)
        if packet.payload_end == packet.payload_offset:
            self.stats.padding_received += 1  # padding on the media SSRC (a probe without RTX)
            return None
        return RtpReceived(media.mid, packet.ssrc, packet, False, route.rid)

    # -- RTCP in --------------------------------------------------------------------

    def _on_rtcp(self, data: bytes, now: float) -> None:
        self.stats.rtcp_received += 1
        srtp = self.srtp
        if srtp is None or self.state is not TransportState.CONNECTED:
            self.stats.dropped_before_keys += 1
            return
        plain = srtp.unprotect_rtcp(data)
        if plain is not None:
            self._on_plain_rtcp(plain, now)

    def replay_rtcp(self, plain: bytes, now: float) -> None:
        """An RTCP compound a compiled receive path unprotected (and counted nowhere yet), handled as if it had
        arrived at ``now`` (netcore.sfu.fastpath)."""
        self.stats.rtcp_received += 1
        self._now = now
        if self.state is TransportState.CONNECTED:
            self._on_plain_rtcp(plain, now)

    def _on_plain_rtcp(self, plain: bytes, now: float) -> None:
        self._timer.packet_size(len(plain))
        try:
            packets = parse_rtcp(plain)
        except RtcpParseError as exc:
            self.stats.rtcp_parse_errors += 1
            packets = list(exc.packets)
        for packet in packets:
            self._on_rtcp_packet(packet, now)
        self._publish_bitrate()
        if packets:
            self._events.append(RtcpReceived(tuple(packets)))

    def _on_rtcp_packet(self, packet: object, now: float) -> None:
        streams = self.sender.streams
        if isinstance(packet, (SenderReport, ReceiverReport, Bye)):
            for reporter in self._reporters():
                reporter.handle_rtcp([packet], now)
            rtt = self._rtt()
            if rtt is not None:
                self._rtt_seen = rtt
                self.estimator.rtt_measured(rtt)
                self.sender.rtt_measured(rtt)
                self.receiver.rtt = rtt
        elif isinstance(packet, Nack):
            if packet.media_ssrc in streams:
                self.stats.nacks_received += len(packet.lost)
                self.sender.retransmit(packet.media_ssrc, packet.lost, now)
                self._flush_rtp(now)
        elif isinstance(packet, TransportFeedback):
            self.stats.twcc_received += 1
            self._watch.feedback()
            if self.sender.fast is not None:
                self.sender.fast.drain(now)
            self.estimator.twcc_received(packet, now)
            self.sender.poll_probe(now)
        elif isinstance(packet, Pli):
            if packet.media_ssrc in streams:
                self.stats.plis_received += 1
                self._events.append(KeyFrameRequested(packet.media_ssrc))
        elif isinstance(packet, Fir):
            for ssrc, sequence in packet.entries:
                # RFC 5104 section 4.3.1.2: a repeated sequence number is a retransmitted request
                if ssrc in streams and self._fir_seen.get(ssrc) != sequence:
                    self._fir_seen[ssrc] = sequence
                    self.stats.firs_received += 1
                    self._events.append(KeyFrameRequested(ssrc))
        elif isinstance(packet, Remb):
            self.stats.remb_received += 1
            if self.config.remb:
                self.estimator.remb_received(packet.bitrate)

    def _reporters(self) -> list[RtcpReporter]:
        reporters = [s.reporter for s in self.sender.streams.values()]
        if self._reporter not in reporters:
            reporters.append(self._reporter)
        return reporters

    def _rtt(self) -> float | None:
        rtts = [r.rtt for r in self._reporters() if r.rtt is not None]
        return min(rtts) if rtts else None

    # -- RTP and RTCP out -----------------------------------------------------------

    def _flush_rtp(self, now: float) -> None:
        out = self.sender.out
        srtp = self.srtp
        if srtp is None:
            out.clear()
            return
        protect, send = srtp.protect_rtp, self.ice.send
        if out and self._twcc_id is not None:
            self._watch.sent(now)
        while out:
            send(protect(out.popleft()), now)

    def _report_packets(self, now: float) -> list:
        """SR/RR of the main SSRC with the report blocks, SRs of our other SSRCs, SDES CNAME (RFC 3550 6.1)."""
        packets: list = [self._reporter.report(now)]
        cname = self.config.cname.encode()
        chunks = [SdesChunk(self.rtcp_ssrc, [(SDES_CNAME, cname)])]
        for ssrc, stream in self.sender.streams.items():
            if stream.reporter is self._reporter:
                continue
            report = stream.reporter.report(now)
            if isinstance(report, SenderReport):
                packets.append(report)
            chunks.append(SdesChunk(ssrc, [(SDES_CNAME, cname)]))
        packets.append(Sdes(chunks))
        return packets

    def _send_rtcp(self, packets: list, now: float) -> None:
        if self.srtp is None:
            return
        data = serialize_rtcp(packets)
        self._timer.packet_size(len(data))
        self.stats.rtcp_sent += 1
        self.ice.send(self.srtp.protect_rtcp(data), now)

    def _schedule_report(self, now: float) -> None:
        senders = sum(1 for s in self.sender.streams.values() if s.packets_sent) + len(self.receiver.streams)
        members = len(self.sender.streams) + len(self.receiver.streams) or 2
        we_sent = any(s.packets_sent for s in self.sender.streams.values())
        self._timer.schedule(now, self.estimator.target_bitrate, members, senders, we_sent)

    def _send_feedback(self, now: float) -> None:
        """NACKs and transport-wide feedback that are due (RFC 4585 Immediate Feedback mode)."""
        feedback: list = []
        for ssrc, lost in self.receiver.poll_nacks(now):
            self.stats.nacks_sent += len(lost)
            feedback.append(Nack(self.rtcp_ssrc, ssrc, lost))
        if feedback:  # the NACKs' other copies, alone (no TWCC feedback twice: it would count twice)
            for _ in range(self.config.nack_copies - 1):
                self.stats.nack_copies_sent += 1
                self._send_feedback_packets(list(feedback), now)
        if self._next_twcc is not None and now >= self._next_twcc:
            self._next_twcc = now + self.config.twcc_interval
            for fb in self.receiver.twcc.build():
                self.stats.twcc_sent += 1
                feedback.append(fb)
        if feedback:
            self._send_feedback_packets(feedback, now)

    def _send_feedback_packets(self, feedback: list, now: float) -> None:
        if self.config.rtcp_rsize:
            self._send_rtcp(feedback, now)  # RFC 5506: feedback alone
            return
        # RFC 4585 section 3.5.2: a compound with feedback stands for the next regular report.
        self._send_rtcp(self._report_packets(now) + feedback, now)
        self._schedule_report(now)

    def _publish_bitrate(self) -> None:
        target = self.estimator.target_bitrate
        self.sender.set_rate(target)
        if abs(target - self._published) > BITRATE_STEP * self._published:
            self._published = target
            self._events.append(BitrateChanged(target))


def _path_changed(direction: Direction, pair: object, reason: str) -> PathChanged:
    local, remote = pair.local, pair.remote  # type: ignore[attr-defined]
    return PathChanged(direction, pair.relayed, local.address, remote.address, reason, pair,  # type: ignore[attr-defined]
                       local.type, remote.type)
