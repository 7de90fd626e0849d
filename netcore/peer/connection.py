"""A peer connection shaped like the W3C ``RTCPeerConnection`` (as aiortc has it), on asyncio.

::

    pc = PeerConnection(PeerConfiguration(hosts=["127.0.0.1"]))
    pc.on("icecandidate", lambda candidate: signal(candidate))     # one per local candidate; None at the end
    pc.on("track", lambda track: track.on_frame(show))
    pc.add_track(LocalVideoTrack(SyntheticCamera(), count=300))
    offer = pc.create_offer(); await pc.set_local_description(offer)
    await pc.set_remote_description(answer)                         # from the peer
    await pc.add_ice_candidate(candidate)                           # trickled; None = end of candidates

The protocol work stays in sans-IO pieces: SDP offer/answer in
:class:`netcore.sdp.jsep.Negotiator`, ICE, DTLS-SRTP, RTP/RTCP and
congestion control in :class:`~netcore.peer.transport.MediaTransport`
(configured by :func:`~netcore.peer.config.config_from_negotiated`), the
encoders and jitter buffers in :mod:`netcore.peer.tracks`. This module owns
the sockets, one :class:`~netcore.driver.Driver`, one task per sending
track and one media timer for the jitter buffers (armed at the earliest of
their deadlines, not polled: see :meth:`PeerConnection._serve`).

Gathering starts at ``set_local_description``, as in browsers, before the
negotiation that configures the transport is complete: an ICE
:class:`~netcore.ice.agent.Agent` is made then (our credentials are the
negotiator's), runs alone until the transport takes it over
(``MediaTransport(config, agent=...)``, ``start(gather=False)``), and its
candidates are both trickled (``icecandidate``) and written into
:attr:`PeerConnection.local_description`, so a peer that does not trickle
(aiortc) finds them in the SDP. Until the transport exists, datagrams from
anywhere but our STUN/TURN servers are held (at most 64) and handed to it
when it starts: a check that arrived early must not select a path the
transport never hears of.

A later offer/answer (either side, after ``add_track`` mid-call) keeps the
transport and the existing m-sections and adds the new ones to it (JSEP,
RFC 8829 section 5.2.2).

States (the W3C enums' values)::

    signaling:  stable --set_local(offer)--> have-local-offer --set_remote(answer)--> stable
                stable --set_remote(offer)--> have-remote-offer --set_local(answer)--> stable
    connection: new --transport started--> connecting --TransportConnected--> connected
                any --TransportFailed--> failed;  close() or the peer's close_notify --> closed
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import socket
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from netcore.aio import DatagramSocket
from netcore.driver import Driver, Timer
from netcore.dtls.certificate import DtlsCertificate
from netcore.errors import UsageError
from netcore.ice import events as ice_events
from netcore.ice.agent import Agent
from netcore.ice.gathering import TurnServerConfig
from netcore.net import Address, Event, Receive, Transmit
from netcore.peer import events as peer_events
from netcore.peer.config import SendLayer, TransportConfig, config_from_negotiated
from netcore.peer.stats import StatsCollector
from netcore.peer.simulcast import Encoding, SimulcastSender, parse_encodings
from netcore.peer.tracks import (CodedFrames, CodedVideoTrack, LocalAudioTrack, LocalVideoTrack, RemoteTrack,
                                  RtpReceiver, RtpSender, SenderLimits)
from netcore.peer.transport import MediaTransport
from netcore.sdp.attributes import Fingerprint
from netcore.sdp.candidate import Candidate
from netcore.sdp.codecs import AUDIO_CODECS, VIDEO_CODECS
from netcore.sdp.jsep import Negotiator
from netcore.sdp.limits import Limits
from netcore.sdp.model import LocalTransport, MediaIntent, NegotiatedSession
from netcore.sdp.wire import parse

__all__ = ["PeerConnection", "PeerConfiguration", "Description", "IceCandidate", "Transceiver",
           "SignalingState", "ConnectionState", "IceConnectionState"]

log = logging.getLogger(__name__)
MEDIA_FLOOR = 0.001  # the media timer never fires sooner than this after it served the buffers
HELD_MAX = 64
# Kernel receive buffer per socket: about 3 s of 2.5 Mbit/s media, so that a process starved of CPU
# for a moment loses nothing (Linux's default 208 KiB holds about 90 datagrams); capped by
# net.core.rmem_max.
RECEIVE_BUFFER = 1024 * 1024


class SignalingState(enum.Enum):
    STABLE = "stable"
    HAVE_LOCAL_OFFER = "have-local-offer"
    HAVE_REMOTE_OFFER = "have-remote-offer"
    CLOSED = "closed"


class ConnectionState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


class IceConnectionState(enum.Enum):
    NEW = "new"
    CHECKING = "checking"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Description:
    """``RTCSessionDescriptionInit``: ``type`` is "offer" or "answer"."""

    sdp: str
    type: str


@dataclass(frozen=True, slots=True)
class IceCandidate:
    """``RTCIceCandidateInit``: ``candidate`` is the ``candidate:...`` string."""

    candidate: str
    sdp_mid: str | None = "0"
    sdp_mline_index: int | None = 0


@dataclass(frozen=True)
class PeerConfiguration:
    """``RTCConfiguration`` plus the local choices a browser makes for itself (the host addresses)."""

    hosts: tuple[str, ...] = ("127.0.0.1",)
    stun_servers: tuple[Address, ...] = ()
    turn_servers: tuple[TurnServerConfig, ...] = ()
    relay_only: bool = False  # iceTransportPolicy "relay"
    certificate: DtlsCertificate | None = None
    max_bitrate: float = 2_500_000
    limits: Limits | None = None  # what we can receive: written in our SDP, the peer's encoders keep below it
    random: Callable[[int], bytes] = field(default=os.urandom, repr=False)


@dataclass(eq=False)
class Transceiver:
    """One m-section: what we send (``track``, ``ssrc``) and what we receive (``receiver``)."""

    kind: str
    direction: str = "sendrecv"
    track: LocalAudioTrack | LocalVideoTrack | CodedVideoTrack | None = None
    ssrc: int = 0
    rtx_ssrc: int | None = None
    mid: str | None = None
    sender: RtpSender | SimulcastSender | None = None
    receiver: RtpReceiver | None = None
    encodings: tuple[Encoding, ...] = ()  # simulcast layers asked for (send_encodings with rids)
    layers: tuple[SendLayer, ...] = ()  # their SSRCs
    codec_preferences: tuple[str, ...] | None = None  # set_codec_preferences: the codecs offered, in order

    def set_codec_preferences(self, names: list[str] | tuple[str, ...]) -> None:
        """Offer (or accept) only these codecs, in this order (W3C ``setCodecPreferences``, by encoding
        name; RTX follows each video codec by itself). An empty list restores the default."""
        table = VIDEO_CODECS if self.kind == "video" else AUDIO_CODECS
        known = {c.name.upper() for c in table}
        wanted = tuple(n.upper() for n in names)
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise UsageError(f"no {self.kind} codec {unknown[0]!r}; choose among {', '.join(sorted(known))}")
        self.codec_preferences = wanted or None

    def intent(self) -> MediaIntent:
        make = MediaIntent.audio if self.kind == "audio" else MediaIntent.video
        rids = tuple(e.rid for e in self.encodings) if len(self.encodings) > 1 else ()
        codecs = None
        if isinstance(self.track, CodedVideoTrack):
            # a coded track can be sent in its own codec only: offered or accepted alone
            codecs = tuple(c for c in VIDEO_CODECS if c.name.upper() == self.track.codec)
        elif self.codec_preferences:
            table = {c.name.upper(): c for c in (VIDEO_CODECS if self.kind == "video" else AUDIO_CODECS)}
            codecs = tuple(table[name] for name in self.codec_preferences)
        return make(direction=self.direction, ssrc=self.ssrc, rtx_ssrc=self.rtx_ssrc, simulcast=rids, codecs=codecs)


class _Phase:
    """The core the driver runs: the ICE agent alone until the transport takes it over."""

    def __init__(self, agent: Agent, servers: set[Address]) -> None:
        self.agent = agent
        self.transport: MediaTransport | None = None
        self.servers = servers
        self.held: deque[Receive] = deque(maxlen=HELD_MAX)

    def handle_datagram(self, datagram: Receive, now: float) -> None:
        if self.transport is not None:
            self.transport.handle_datagram(datagram, now)
        elif datagram.source in self.servers:
            self.agent.handle_datagram(datagram, now)
        else:
            self.held.append(datagram)

    def handle_timeout(self, now: float) -> None:
        (self.transport or self.agent).handle_timeout(now)

    def poll_transmit(self) -> Transmit | None:
        return (self.transport or self.agent).poll_transmit()

    def poll_event(self) -> Event | None:
        return (self.transport or self.agent).poll_event()

    def next_deadline(self) -> float | None:
        return (self.transport or self.agent).next_deadline()


class PeerConnection:
    """See the module docstring; method names are the W3C ones in snake case."""

    def __init__(self, configuration: PeerConfiguration | None = None) -> None:
        self.configuration = configuration or PeerConfiguration()
        self._random = self.configuration.random
        self.certificate = self.configuration.certificate or DtlsCertificate.generate()
        self._negotiator = Negotiator(LocalTransport((Fingerprint("sha-256", self.certificate.fingerprint()),)),
                                      limits=self.configuration.limits, random=self._random)
        self.transceivers: list[Transceiver] = []
        self.signaling_state = SignalingState.STABLE
        self.connection_state = ConnectionState.NEW
        self.ice_connection_state = IceConnectionState.NEW
        self.transport: MediaTransport | None = None
        self.negotiated: NegotiatedSession | None = None
        self._handlers: dict[str, list[Callable[..., Any]]] = {}
        self._loop = asyncio.get_running_loop()
        self._phase: _Phase | None = None
        self._driver: Driver | None = None
        self._sockets: dict[Address, DatagramSocket] = {}
        self._local_candidates: list[Candidate] = []
        self._gathered = False
        self._remote_candidates: list[Candidate | None] = []
        self._local: Description | None = None
        self._remote_offer: str | None = None
        self._tasks: list[asyncio.Task] = []
        self._encoding: ThreadPoolExecutor | None = None  # video encodes off the loop (see _encode)
        self._decoding: ThreadPoolExecutor | None = None  # and decodes (see _pop)
        self._decode_queues: dict[str, deque] = {}  # by MID: frames taken, not yet decoded
        self._media_timer = Timer(self._loop, self._media_due)  # the jitter buffers' next deadline
        self._media_deadlines: dict[str, float] = {}  # by MID: each receiver's, when it has one
        self._senders: dict[int, RtpSender] = {}  # every encoder by SSRC (a simulcast track's layers each)
        self._tracks: list[RtpSender | SimulcastSender] = []  # one per sending track: what shares the bitrate
        self._receivers: dict[str, RtpReceiver] = {}
        self.stats = StatsCollector()
        # "send" and "receive" -> the latest PathChanged of that direction (see the "pathchange" event)
        self.paths: dict[str, peer_events.PathChanged] = {}

    # -- events ------------------------------------------------------------------------

    def on(self, name: str, handler: Callable[..., Any] | None = None) -> Any:
        """Register ``handler`` for event ``name`` ("track", "icecandidate", "connectionstatechange",
        "iceconnectionstatechange", "signalingstatechange", "pathchange"); usable as a decorator.

        "pathchange" is not in the W3C API: its handler gets a
        :class:`~netcore.peer.events.PathChanged` each time the pair one direction uses changes
        (``direction`` "send" or "receive", ``relayed``, the candidate types): a call that moves
        from a direct path to the TURN relay mid-call, without a new offer, says so here.

        Two netcore taps on the receive path (a recorder's): "rtpreceived" ``(mid, packet, now)``
        for each media packet after SRTP (RTX unwrapped), before the jitter buffer, and
        "rtcpreceived" ``(packets, now)`` for each decrypted compound (sender reports in it).
        """
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._handlers.setdefault(name, []).append(fn)
            return fn
        return register(handler) if handler is not None else register

    def _emit(self, name: str, *args: Any) -> None:
        for handler in self._handlers.get(name, []):
            handler(*args)

    def _set_signaling(self, state: SignalingState) -> None:
        if state is not self.signaling_state:
            self.signaling_state = state
            self._emit("signalingstatechange")

    def _set_connection(self, state: ConnectionState) -> None:
        if state is not self.connection_state and self.connection_state is not ConnectionState.CLOSED:
            self.connection_state = state
            self._emit("connectionstatechange")

    def _set_ice(self, state: IceConnectionState) -> None:
        if state is not self.ice_connection_state and self.ice_connection_state is not IceConnectionState.CLOSED:
            self.ice_connection_state = state
            self._emit("iceconnectionstatechange")

    # -- tracks ------------------------------------------------------------------------

    def add_transceiver(self, kind: str | LocalAudioTrack | LocalVideoTrack | CodedVideoTrack,
                        direction: str = "sendrecv", *,
                        send_encodings: list[dict] | None = None) -> Transceiver:
        """A new m-section of ``kind`` ("audio"/"video", or a track to send) in the next offer (or taken
        by the answer). ``send_encodings`` with two or more ``rid``s sends the video track as simulcast
        (see netcore.peer.simulcast)."""
        track = None if isinstance(kind, str) else kind
        kind = kind if isinstance(kind, str) else kind.kind
        if kind not in ("audio", "video"):
            raise UsageError(f"transceiver kind {kind!r} is not audio or video")
        encodings = parse_encodings(send_encodings) if send_encodings else ()
        if len(encodings) > 1 and kind != "video":
            raise UsageError("simulcast is for video")
        if len(encodings) > 1 and isinstance(track, CodedVideoTrack):
            raise UsageError("a coded track is one stream: publish each rendition as a track of its own")
        ssrc = int.from_bytes(self._random(4), "big") or 1
        rtx = (int.from_bytes(self._random(4), "big") or 2) if kind == "video" else None
        transceiver = Transceiver(kind, direction, track=track, ssrc=ssrc, rtx_ssrc=rtx, encodings=encodings)
        if len(encodings) > 1:
            transceiver.layers = tuple(
                SendLayer(e.rid, int.from_bytes(self._random(4), "big") or 3,
                          int.from_bytes(self._random(4), "big") or 4) for e in encodings)
        self.transceivers.append(transceiver)
        return transceiver

    def add_track(self, track: LocalAudioTrack | LocalVideoTrack | CodedVideoTrack) -> Transceiver:
        """Send ``track``: on the first transceiver of its kind without a track, else on a new one."""
        for transceiver in self.transceivers:
            if transceiver.kind == track.kind and transceiver.track is None and "send" in transceiver.direction:
                transceiver.track = track
                return transceiver
        transceiver = self.add_transceiver(track.kind)
        transceiver.track = track
        return transceiver

    # -- offer/answer ------------------------------------------------------------------

    def create_offer(self) -> Description:
        if self.signaling_state not in (SignalingState.STABLE, SignalingState.HAVE_LOCAL_OFFER):
            raise UsageError(f"create_offer in {self.signaling_state.value}")
        offer = self._negotiator.create_offer([t.intent() for t in self.transceivers])
        return Description(str(offer), "offer")

    def create_answer(self) -> Description:
        if self.signaling_state is not SignalingState.HAVE_REMOTE_OFFER or self._remote_offer is None:
            raise UsageError("create_answer needs a remote offer")
        answer, session = self._negotiator.handle_offer(self._remote_offer, [t.intent() for t in self.transceivers])
        self.negotiated = session
        return Description(str(answer), "answer")

    async def set_local_description(self, description: Description) -> None:
        self._local = description
        await self._gather()
        if description.type == "offer":
            self._set_signaling(SignalingState.HAVE_LOCAL_OFFER)
        elif description.type == "answer":
            if self.negotiated is None:
                raise UsageError("set_local_description(answer) before create_answer")
            self._set_signaling(SignalingState.STABLE)
            self._negotiation_done(self.negotiated)
        else:
            raise UsageError(f"description type {description.type!r}")

    async def set_remote_description(self, description: Description) -> None:
        if description.type == "offer":
            self._remote_offer = description.sdp
            self._take_remote_sections(description.sdp)
            self._set_signaling(SignalingState.HAVE_REMOTE_OFFER)
        elif description.type == "answer":
            if self.signaling_state is not SignalingState.HAVE_LOCAL_OFFER:
                raise UsageError(f"an answer in {self.signaling_state.value}")
            self.negotiated = self._negotiator.handle_answer(description.sdp)
            self._set_signaling(SignalingState.STABLE)
            self._negotiation_done(self.negotiated)
        else:
            raise UsageError(f"description type {description.type!r}")

    def _take_remote_sections(self, sdp: str) -> None:
        """A transceiver (receive only) for each offered audio/video section no transceiver of ours takes."""
        kinds = [m.kind for m in parse(sdp).media if m.kind in ("audio", "video")]
        free = [t.kind for t in self.transceivers]
        for kind in kinds:
            if kind in free:
                free.remove(kind)
            else:
                self.add_transceiver(kind, "recvonly")

    @property
    def local_description(self) -> Description | None:
        """Our description with the candidates gathered so far (and end-of-candidates once complete)."""
        if self._local is None:
            return None
        lines = [f"a=candidate:{c}" for c in self._local_candidates]
        if self._gathered:
            lines.append("a=end-of-candidates")
        return Description(_with_candidates(self._local.sdp, lines), self._local.type)

    async def add_ice_candidate(self, candidate: IceCandidate | None) -> None:
        """A trickled remote candidate; ``None`` (or an empty ``candidate``) is end-of-candidates.

        A malformed candidate string raises :class:`netcore.sdp.errors.CandidateError` (the W3C
        ``addIceCandidate`` rejects it too); the connection is unaffected.
        """
        parsed = None if candidate is None or not candidate.candidate else Candidate.from_trickle(candidate.candidate)
        if self.transport is None:
            self._remote_candidates.append(parsed)
            return
        self._call(self.transport.add_remote_candidate, parsed)

    # -- gathering and the transport -----------------------------------------------------

    async def _gather(self) -> None:
        if self._phase is not None:
            return
        conf = self.configuration
        agent = Agent(self.signaling_state is SignalingState.STABLE, stun_servers=conf.stun_servers,
                      turn_servers=conf.turn_servers, relay_only=conf.relay_only,
                      ufrag=self._negotiator.ice_ufrag, pwd=self._negotiator.ice_pwd, random=self._random)
        servers = set(conf.stun_servers) | {t.address for t in conf.turn_servers}
        self._phase = _Phase(agent, servers)
        self._driver = Driver(self._phase, self._loop, self._send, self._on_event)
        for host in conf.hosts:
            transport, sock = await self._loop.create_datagram_endpoint(lambda: DatagramSocket(self._receive),
                                                                        local_addr=(host, 0))
            with contextlib.suppress(OSError):
                transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            self._sockets[sock.local] = sock
            agent.add_local_address(sock.local)
        self._call(agent.gather)

    def _negotiation_done(self, session: NegotiatedSession) -> None:
        """The first offer/answer starts the transport; a later one adds its new m-sections to it."""
        if self.transport is None:
            self._start_transport(session)
        else:
            self._renegotiated(session)

    def _config(self, session: NegotiatedSession) -> TransportConfig:
        send_ssrcs, send_layers = {}, {}
        mids = [m.mid for m in session.media]
        for transceiver, mid in zip(self.transceivers, mids):
            transceiver.mid = mid
            send_ssrcs[mid] = (transceiver.ssrc, transceiver.rtx_ssrc)
            if transceiver.layers:
                send_layers[mid] = transceiver.layers
        offset = _wallclock_offset(self._loop)
        return config_from_negotiated(session, self.certificate, send_ssrcs=send_ssrcs, send_layers=send_layers,
                                      random=self._random,
                                      max_bitrate=self.configuration.max_bitrate, wallclock_offset=offset,
                                      cname=self._negotiator.cname,
                                      stun_servers=self.configuration.stun_servers,
                                      turn_servers=self.configuration.turn_servers,
                                      ice_relay_only=self.configuration.relay_only)

    def _renegotiated(self, session: NegotiatedSession) -> None:
        """A later offer/answer (RFC 8829 section 5.2.2): the transport, its ICE, DTLS and SRTP and the
        existing m-sections stay; sections new to the bundle get routes, senders and receivers."""
        assert self.transport is not None
        known = {m.mid for m in self.transport.config.media}
        for media in self._config(session).media:
            if media.mid not in known:
                self._call(lambda now, media=media: self.transport.add_media(media))
        self._make_receivers(session)
        if self.connection_state is ConnectionState.CONNECTED:
            self._start_senders()

    def _start_transport(self, session: NegotiatedSession) -> None:
        assert self._phase is not None
        config = self._config(session)
        self.transport = transport = MediaTransport(config, agent=self._phase.agent)
        self._phase.transport = transport
        self._call(lambda now: transport.start(now, gather=False))
        for candidate in self._remote_candidates:
            self._call(transport.add_remote_candidate, candidate)
        self._remote_candidates.clear()
        while self._phase.held:
            self._driver.receive(self._phase.held.popleft())  # type: ignore[union-attr]
        self._set_connection(ConnectionState.CONNECTING)
        self._set_ice(IceConnectionState.CHECKING)
        self._make_receivers(session)

    def _make_receivers(self, session: NegotiatedSession) -> None:
        for transceiver, media in zip(self.transceivers, session.media):
            if media.rejected or not media.recv or media.mid is None or not media.recv_codecs:
                continue
            if media.mid in self._receivers:
                continue  # made by an earlier negotiation
            codecs = {c.payload_type: (c.name, c.clock_rate) for c in media.recv_codecs if c.payload_type is not None}
            track = RemoteTrack(media.kind, media.mid)
            transceiver.receiver = self._receivers[media.mid] = RtpReceiver(track, codecs)
            self._emit("track", track)

    def _start_senders(self) -> None:
        assert self.negotiated is not None and self.transport is not None
        # One schedule origin for the tracks started together: a camera and a microphone sample the
        # same instants (the first task would otherwise run its first encode before the next reads
        # the clock, putting audio and video that much apart in the sender reports).
        start = self._loop.time()
        for transceiver, media in zip(self.transceivers, self.negotiated.media):
            codec = media.send_codec
            if transceiver.track is None or media.rejected or not media.send or codec is None:
                continue
            if transceiver.sender is not None:
                continue  # sending since an earlier negotiation
            layers = [la for la in transceiver.layers if la.rid in media.send_rids]
            ssrcs = [(la.ssrc, la.rid) for la in layers] or [(transceiver.ssrc, None)]
            by_rid = {e.rid: e for e in transceiver.encodings}
            if len(transceiver.encodings) == 1:  # one encoding: no simulcast, its scalability mode still holds
                by_rid[None] = transceiver.encodings[0]
            senders = [RtpSender(transceiver.track, mid=media.mid or "", ssrc=ssrc,
                                 payload_type=codec.payload_type, codec=codec.name,
                                 limits=SenderLimits.from_limits(media.limits), random=self._random,
                                 bitrate=self.transport.target_bitrate,
                                 temporal_layers=by_rid[rid].temporal_layers if rid in by_rid else 1)
                       for ssrc, rid in ssrcs]
            for sender in senders:
                self._senders[sender.ssrc] = sender
            if layers:  # RFC 8853: the answer kept these rids
                group: RtpSender | SimulcastSender = SimulcastSender(
                    transceiver.track, [(sender, by_rid[rid]) for sender, (_, rid) in zip(senders, ssrcs)])
            else:
                group = senders[0]
            transceiver.sender = group
            self._tracks.append(group)
            self._tasks.append(self._loop.create_task(self._run_sender(group, start)))
        self._share_bitrate(self.transport.target_bitrate)

    def _share_bitrate(self, target: float) -> None:
        """Every encoder follows the transport's target; video tracks split what audio leaves (a
        simulcast track splits its share again among its layers)."""
        video = sum(1 for s in self._tracks if s.kind == "video")
        for sender in self._tracks:
            sender.bitrate_changed(target, video)

    async def _run_sender(self, sender: RtpSender | SimulcastSender, start: float) -> None:
        """Encode and send the track's frames at its frame rate from ``start``, on the loop's clock."""
        interval = 1.0 / sender.track.fps
        next_at = start
        while self.transport is not None and self.connection_state is ConnectionState.CONNECTED:
            # The frame's capture instant is its place on the schedule: the track's timestamps count
            # frames of that schedule (a late loop drops video frames and keeps it), so a loop that
            # runs late does not make the sender reports say the frame was taken late.
            packets = await self._encode(sender, next_at)
            if packets is None:
                return
            for layer in sender.senders if packets else ():
                if layer.last_capture is not None:  # what its sender reports extrapolate from
                    self.transport.media_captured(layer.ssrc, *layer.last_capture)
            for packet in packets:
                self._call(self.transport.send_rtp, packet)
            next_at += interval
            now = self._loop.time()
            while sender.kind == "video" and now - next_at >= interval:
                # Late by a frame or more (a busy or stalled process): the video frames missed are dropped,
                # as a camera drops what nobody took, rather than encoded back to back into a burst
                # the link must absorb; their timestamps pass, so the receiver's clock stays true.
                if sender.track.skip():
                    sender.frames_skipped += 1
                next_at += interval
            await asyncio.sleep(max(0.0, next_at - now))

    async def _encode(self, sender: RtpSender | SimulcastSender, capture_time: float) -> list | None:
        """The track's next frame in packets; None when the track has ended.

        The frame is taken here, on the loop (a track's source may be anything the caller wrote),
        and video is coded on a thread of its own (PyAV lets go of the GIL while the codec works):
        a 640x480 frame takes a few ms of the loop otherwise, which every packet arriving meanwhile
        waits for, and on a busy machine a single thread gets one thread's share of the CPU (the
        peer fell seconds behind where aiortc, which codes on threads, did not). Audio, a fraction
        of a ms, and frames coded elsewhere stay on the loop.
        """
        frame = sender.track.next_frame()
        if frame is None:
            return None
        if sender.kind != "video" or isinstance(frame, CodedFrames):
            return sender.encode(frame, capture_time)
        if self._encoding is None:
            self._encoding = ThreadPoolExecutor(1, thread_name_prefix="netcore-encode")
        return await self._loop.run_in_executor(self._encoding, sender.encode, frame, capture_time)

    async def _decode(self, receiver: RtpReceiver, queue: deque) -> None:
        """Decode ``queue``'s frames in order off the loop and deliver their pictures; ends when it is empty."""
        if self._decoding is None:
            self._decoding = ThreadPoolExecutor(1, thread_name_prefix="netcore-decode")
        while queue:
            decoder, frame = queue[0]
            pictures = await self._loop.run_in_executor(self._decoding, receiver.decode, decoder, frame)
            queue.popleft()  # only now: a frame queued meanwhile finds the queue busy and starts no task
            for picture in pictures:
                receiver.track.deliver(picture)
        self._tasks = [t for t in self._tasks if not t.done() and t is not asyncio.current_task()]

    def _media_due(self, now: float) -> None:
        """The media timer fired: serve every receiver whose deadline has come."""
        if self.connection_state in (ConnectionState.CLOSED, ConnectionState.FAILED):
            return
        for mid, receiver in list(self._receivers.items()):
            deadline = self._media_deadlines.get(mid)
            if deadline is not None and deadline <= now:
                self._serve(mid, receiver, now)
        self._arm_media()

    def _serve(self, mid: str, receiver: RtpReceiver, now: float) -> None:
        """Pop what the receiver's jitter buffer lets out, send the key frame requests it raised, and
        note when it must be served next.

        Called when a packet arrived for it and when its deadline comes (the media timer), rather
        than every 5 ms for every receiver: a tick of its own cost the loop a wake-up 200 times a
        second for the buffers' sake, most with nothing due (a call peer's loop thread spent a
        tenth of its time there), and held a frame up to a tick past its due time.
        """
        transport = self.transport
        if transport is not None:
            receiver.jitter.rtt = transport.receiver.rtt  # its NACK schedule is the transport's
        self._pop(receiver, now)
        if receiver.poll_keyframe_request() and receiver.ssrc is not None and transport is not None:
            # Not within the driver's flush (a packet's event): the request is sent on its own call.
            self._loop.call_soon(self._request_keyframe_of, receiver)
        deadline = receiver.jitter.next_deadline()
        if deadline is None:
            self._media_deadlines.pop(mid, None)
        else:
            self._media_deadlines[mid] = max(deadline, now + MEDIA_FLOOR)

    def _request_keyframe_of(self, receiver: RtpReceiver) -> None:
        if self.transport is not None and receiver.ssrc is not None:
            self._call(self.transport.request_keyframe, receiver.ssrc)

    def _arm_media(self) -> None:
        self._media_timer.arm(min(self._media_deadlines.values()) if self._media_deadlines else None)

    @property
    def media_deadline(self) -> float | None:
        """When the media timer next serves the jitter buffers (the loop's clock); None: nothing is
        waiting in them."""
        return self._media_timer.deadline

    def _pop(self, receiver: RtpReceiver, now: float) -> None:
        """Decode what the receiver's jitter buffer lets out; the transport's NACKs then stop asking
        for what it played or skipped past (libwebrtc's NACK module is cleared the same way).
        Video is decoded on a thread of its own, in order, and delivered on the loop (see
        :meth:`_encode`); audio, a fraction of a ms, here."""
        if receiver.track.kind == "video":
            due = receiver.take(now)
            if due:
                queue = self._decode_queues.setdefault(receiver.track.mid, deque())
                queue.extend(due)
                if len(queue) == len(due):  # nothing was waiting: no drain task is running
                    self._tasks.append(self._loop.create_task(self._decode(receiver, queue)))
        else:
            receiver.pop(now)
        played = receiver.jitter.played_sequence
        ssrc = receiver.jitter.ssrc
        if played is not None and ssrc is not None and self.transport is not None:
            self.transport.forget_through(ssrc, played)

    # -- driver plumbing ---------------------------------------------------------------

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        result = method(*args, self._loop.time())
        if self._driver is not None:
            self._driver.flush()
        return result

    def _receive(self, datagram: Receive) -> None:
        if self._driver is not None:
            self._driver.receive(datagram)

    def _send(self, transmit: Transmit) -> None:
        sock = self._sockets.get(transmit.source)  # type: ignore[arg-type]
        if sock is None and len(self._sockets) == 1:
            sock = next(iter(self._sockets.values()))
        if sock is not None and sock.transport is not None and not sock.transport.is_closing():
            sock.transport.sendto(transmit.data, transmit.destination)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, (ice_events.CandidateGathered, peer_events.CandidateGathered)):
            self._local_candidates.append(event.candidate)
            self._emit("icecandidate", IceCandidate(event.candidate.to_trickle()))
        elif isinstance(event, (ice_events.GatheringCompleted, peer_events.GatheringCompleted)):
            if not self._gathered:
                self._gathered = True
                self._emit("icecandidate", None)
        elif isinstance(event, peer_events.RtpReceived):
            now = self._loop.time()
            self._emit("rtpreceived", event.mid, event.packet, now)
            receiver = self._receivers.get(event.mid)
            if receiver is not None:
                receiver.insert(event.packet, now, event.retransmitted)
                self._serve(event.mid, receiver, now)
                self._arm_media()
        elif isinstance(event, peer_events.BitrateChanged):
            self._share_bitrate(event.target)
        elif isinstance(event, peer_events.KeyFrameRequested):
            sender = self._senders.get(event.ssrc)
            if sender is not None:
                sender.keyframe_requested()
        elif isinstance(event, peer_events.RtcpReceived):
            self.stats.rtcp_received(event.packets, self._loop.time())
            self._emit("rtcpreceived", event.packets, self._loop.time())
        else:
            self._on_state_event(event)

    def _on_state_event(self, event: Event) -> None:
        if isinstance(event, peer_events.PathChanged):
            self.paths[event.direction.value] = event
            if event.direction is peer_events.Direction.SEND:
                self.stats.path_changed(event)
                self._set_ice(IceConnectionState.CONNECTED)
            self._emit("pathchange", event)
        elif isinstance(event, peer_events.TransportConnected):
            self._set_ice(IceConnectionState.CONNECTED)
            self._set_connection(ConnectionState.CONNECTED)
            self._start_senders()
        elif isinstance(event, peer_events.TransportFailed):
            self._set_ice(IceConnectionState.FAILED)
            self._set_connection(ConnectionState.FAILED)
        elif isinstance(event, peer_events.TransportClosed):
            self._set_ice(IceConnectionState.CLOSED)
            self._set_connection(ConnectionState.CLOSED)

    def request_keyframe(self, track: RemoteTrack, *, fir: bool = False) -> None:
        """Ask the peer for a key frame of ``track`` (a PLI, or a FIR); not in the W3C API, which
        leaves it to the browser: a viewer joining late or a recorder starting uses it."""
        receiver = self._receivers.get(track.mid)
        if self.transport is None or receiver is None or receiver.ssrc is None:
            raise UsageError("no media has arrived on this track yet")
        self._call(lambda now: self.transport.request_keyframe(receiver.ssrc, now, fir=fir))

    # -- stats and closing -----------------------------------------------------------------

    def get_stats(self) -> dict[str, dict[str, Any]]:
        """A W3C ``RTCStatsReport`` as a dict of stats id -> stats (each with ``type``)."""
        return self.stats.report(self.transport, self._senders, self._receivers, self._loop.time())

    async def close(self) -> None:
        """BYE and close_notify out, then the tasks, the timer and the sockets."""
        if self.signaling_state is SignalingState.CLOSED:
            return
        if self.transport is not None:
            self._call(self.transport.close)
        self._media_timer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for pool in (self._encoding, self._decoding):
            if pool is not None:
                pool.shutdown(wait=False)  # a coding under way ends on its own
        if self._driver is not None:
            self._driver.close()
        for sock in self._sockets.values():
            if sock.transport is not None:
                sock.transport.close()
        self._set_signaling(SignalingState.CLOSED)
        self._set_ice(IceConnectionState.CLOSED)
        self._set_connection(ConnectionState.CLOSED)


def _wallclock_offset(loop: asyncio.AbstractEventLoop) -> float:
    """Unix time minus the loop's clock: RTCP's NTP timestamps are wall-clock time."""
    return time.time() - loop.time()


def _with_candidates(sdp: str, lines: list[str]) -> str:
    """``sdp`` with ``lines`` (``a=candidate``, ``a=end-of-candidates``) at the end of each m-section."""
    if not lines:
        return sdp
    out: list[str] = []
    in_media = False
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if line.startswith("m="):
            if in_media:
                out.extend(lines)
            in_media = True
        out.append(line)
    if in_media:
        out.extend(lines)
    return "\r\n".join(out) + "\r\n"
