"""The asyncio adapter of the call server: the media sockets, one driver, HTTP, the service link.

The core (:class:`netcore.sfu.core.SfuCore`) decides everything; this module
owns the UDP socket of each address family (one port for all participants),
runs the core under one :class:`~netcore.driver.Driver`, serves ``/health``
and ``/metrics``, and keeps a WebSocket to netcore-signal's ``/v1/service``
link (reconnecting), over which participants' offers arrive and answers,
slots and the active speaker go back (docs/signaling.md, docs/sfu.md).

Several call servers may link to one signaling service: each names itself
(``?server=NAME``) and reports its load every ``REPORT_INTERVAL``
(``service.load``); signaling places rooms by that load and takes a server
whose link closes or whose reports stop as dead, moving its rooms. So when
the link comes back, the rooms that were here have moved: the server drops
every participant it still has (``participant.left`` reason ``relinked``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import socket
import time
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import quote

from netcore.aio import DatagramBatch, DatagramSocket, open_udp_socket
from netcore.broadcast.card import card_image, encode_card
from netcore.broadcast.studio import Studios
from netcore.driver import Driver
from netcore.demux import media_first
from netcore.dtls.certificate import DtlsCertificate
from netcore.errors import NetcoreError, UsageError
from netcore.net import Address, Receive, Transmit
from netcore.record.manifest import MANIFEST_NAME
from netcore.record.store import recording_name
from netcore.record.writer import DirectoryStorage
from netcore.sfu import fastpath
from netcore.sfu.cascade import CascadeCore
from netcore.sfu.core import SfuConfig, SfuCore
from netcore.sfu.topology import ServerRecord, choose_upstream
from netcore.sfu.events import (ActiveSpeakerChanged, KeyFrameRequested, LayerSwitched, ParticipantJoined,
                                ParticipantLeft, SlotsChanged)
from netcore.sfu.recorder import SfuRecorder
from servers.analytics.producer import AnalyticsProducer, open_writer
from servers.daemon import cancel_and_wait
from servers.servicelink import send_message
from servers.sfu.config import Settings
from servers.sfu.metrics import render_metrics, serve_http, series_text
from servers.sfu.cascade import CascadeLinks, render_cascade_metrics
from servers.sfu.registry import Registry
from servers.sfu.workers import WorkerLinks

__all__ = ["SfuServer", "log_event"]

log = logging.getLogger("netcore.sfu")
RECONNECT_DELAY = (0.2, 5.0)  # seconds: first and largest wait before reconnecting the service link
STUDIO_TICK = 0.1  # seconds: how often studios' states are compared with what signaling was told
STUDIO_COUNTERS = (("cuts", "Cuts put on air (at the new source's key frame)"),
                   ("keyframe_requests", "Key frames studios asked sources for (cuts, waits, program subscribers)"),
                   ("card_frames", "Frames of the studios' cards sent"),
                   ("mix_frames", "Frames of the studios' audio mixes made"),
                   ("mix_dropped", "Microphone packets a mix dropped (their source ran ahead)"))
REPORT_INTERVAL = 0.5  # seconds between load reports (signaling takes 2 s without one as dead)
ALIVE_INTERVAL = 5.0  # seconds between touches of a live recording's manifest (workers' --stale is above)
RECORDINGS_LIST = "nc:recordings"  # Redis list of finished recordings' journal directories (the workers BRPOP)
WRITE_QUEUE = 1024  # datagrams a compiled socket keeps while its buffer is full (then it drops)


def log_event(event: str, **fields: Any) -> None:
    """One structured log line (JSON)."""
    if log.isEnabledFor(logging.INFO):
        log.info(json.dumps({"event": event, **fields}, sort_keys=True, default=str))


def _slots(slots) -> list[dict]:
    """The slots as signaling relays them (docs/signaling.md); ``heights`` only where some are known."""
    return [{"mid": s.mid, "kind": s.kind, "publisher": s.publisher, "track": s.track,
             **({"heights": list(s.heights)} if s.heights else {})} for s in slots]


class CompiledSocket:
    """A media socket the compiled path reads (``SfuCore.read_socket``: one ``recvmmsg`` per wake-up, a
    publisher packet it takes costs no Python frame), the loop only telling when it is readable.

    Offers the part of an asyncio datagram transport the server uses (``sendto``, ``is_closing``,
    ``close``, ``get_extra_info("socket")``) as its ``transport``, so both kinds of media socket are used
    alike.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, on_readable: Any) -> None:
        """``sock``: bound and non-blocking (:func:`~netcore.aio.open_udp_socket`); this owns it from now on."""
        self.sock = sock
        self.fd = sock.fileno()
        self.local: Address = sock.getsockname()[:2]
        self.transport = self
        self._loop = loop
        self._closed = False
        self._waiting: deque[tuple[bytes, Address]] = deque()  # refused by a full buffer, sent when writable
        self.dropped = 0  # datagrams dropped for a full buffer with WRITE_QUEUE already waiting
        loop.add_reader(self.fd, on_readable, self)

    def sendto(self, data: bytes, destination: Address) -> None:
        """Send now, or (the socket's buffer full) when the socket is writable again, in order, as asyncio's
        transport does: a DTLS flight or a STUN answer is not lost to a burst of copies."""
        if not self._waiting:
            try:
                self.sock.sendto(data, destination)
                return
            except BlockingIOError:
                self._loop.add_writer(self.fd, self._writable)
        if len(self._waiting) >= WRITE_QUEUE:
            self.dropped += 1
            return
        self._waiting.append((data, destination))

    def _writable(self) -> None:
        waiting = self._waiting
        while waiting:
            data, destination = waiting[0]
            try:
                self.sock.sendto(data, destination)
            except BlockingIOError:
                return
            except OSError:  # this destination refused: the others still go
                pass
            waiting.popleft()
        self._loop.remove_writer(self.fd)

    def is_closing(self) -> bool:
        return self._closed

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self.fd)
            if self._waiting:
                self._loop.remove_writer(self.fd)
            self.sock.close()


class SfuServer:
    """One call server process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.core: SfuCore | None = None
        self.driver: Driver | None = None
        self.sockets: dict[Address, DatagramSocket | CompiledSocket] = {}
        self.http: asyncio.Server | None = None
        self.started = time.monotonic()
        self._link: Any = None
        self._link_task: asyncio.Task | None = None
        self._closing = False
        self._linked_before = False
        self._last_count: tuple[float, int] | None = None  # (time, forwarded packets) of the last report
        self.send_errors = 0
        self.analytics: AnalyticsProducer | None = None
        if settings.analytics or settings.analytics_redis:
            self.analytics = AnalyticsProducer(settings.node or socket.gethostname(),
                                               open_writer(settings.analytics_redis, settings.analytics))
        # participant (signaling session) id -> user (from media.offer), for analytics and recordings' manifests
        self._users: dict[str, str] = {}
        self.recorder: SfuRecorder | None = None
        self._recording_started: dict[str, float] = {}  # room id -> loop time its recording started
        self._announcements: list[asyncio.Future] = []
        self._alive_task: asyncio.Task | None = None
        self.workers: WorkerLinks | None = None
        self.transcode_port: int | None = None
        self.studios: Studios | None = None  # studio rooms' programs (docs/broadcast.md)
        self._studio_task: asyncio.Task | None = None
        self._studio_states: dict[str, dict] = {}  # room -> the studio.state last told
        # the audio mixes' coding (decode, sum, encode), off the event loop; one thread keeps their frames in order
        self._mix_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="studio-mix")
        self.cascade: CascadeCore | None = None  # links to other call servers (docs/broadcast.md)
        self.links: CascadeLinks | None = None
        self.cascade_port: int | None = None
        self.link_sockets: dict[Address, DatagramSocket] = {}
        self.registry: Registry | None = None

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        port = 0
        batch = DatagramBatch(loop, self._receive_batch)  # one for every media socket: one pass of the loop
        compiled = fastpath.wanted(self.settings.forward_path)
        for host, wanted in self.settings.listen:
            if compiled:  # read in C (see CompiledSocket)
                sock = CompiledSocket(loop, open_udp_socket(host, wanted or port), self._readable)
            else:
                _, sock = await loop.create_datagram_endpoint(
                    lambda: DatagramSocket(batch.add), sock=open_udp_socket(host, wanted or port))
            # (its 4 MiB buffers: the RTCP of hundreds of subscribers and a burst of copies ride out a stall)
            self.sockets[sock.local] = sock
            port = port or sock.local[1]
        local = list(self.sockets)
        public = [self._public(address) for address in local]
        self.core = SfuCore(SfuConfig(DtlsCertificate.generate(), local, public,
                                      max_participants=self.settings.max_participants,
                                      max_bitrate=self.settings.max_bitrate,
                                      max_subscriber_bitrate=self.settings.max_subscriber_bitrate,
                                      last_n=self.settings.last_n,
                                      wallclock_offset=time.time() - loop.time(),
                                      transcoding=self.settings.transcode is not None,
                                      transcode_hold=self.settings.transcode_hold))
        if compiled:  # steady streams forwarded in C, on these sockets
            self.core.fastpath = fastpath.FastPath({address: sock.transport.get_extra_info("socket").fileno()
                                                    for address, sock in self.sockets.items()})
        self.recorder = SfuRecorder(self.core, self._open_journal, wallclock_offset=time.time() - loop.time(),
                                    names=lambda session_id: self._users.get(session_id, ""),
                                    on_end=self._recording_ended)
        if self.settings.cascade is not None:
            await self._open_cascade()
        self.driver = Driver(self.cascade or self.core, loop, self._send, self._on_event)
        card = await asyncio.to_thread(lambda: encode_card(card_image(path=self.settings.studio_card)))
        self.studios = Studios(self.core, card,
                               users=lambda session_id: self._users.get(session_id, ""), execute=self._mix)
        self._studio_task = loop.create_task(self._run_studios())
        if self.cascade is not None:
            host = self.settings.cascade_media[0] if self.settings.cascade_media else self.settings.cascade[0]
            upstream = self.settings.upstream
            if upstream is None and self.settings.registry and self.settings.tier != "origin":
                upstream = self._choose_upstream  # type: ignore[assignment]
            self.links = CascadeLinks(self.cascade, self.driver, self.settings.service_secret, upstream,
                                      self.settings.cascade_rooms, host, self._public, log_event)
            self.cascade_port = await self.links.start(*self.settings.cascade)
            if self.settings.registry:
                self.registry = Registry(self.settings.registry, self._registration, log_event)
                self.registry.start()
        if self.settings.http is not None:
            self.http = await serve_http(*self.settings.http, self._metrics, self.health)
        if self.settings.transcode is not None:
            self.workers = WorkerLinks(self.core, self.driver, self.settings.service_secret, log_event)
            self.transcode_port = await self.workers.start(*self.settings.transcode)
        if self.settings.signal:
            self._link_task = loop.create_task(self._service_loop())
        self._alive_task = loop.create_task(self._mark_recordings_alive())
        log_event("sfu.started", media=[list(a) for a in local], public=[list(a) for a in public],
                  http=list(self.http_address) if self.http else None, signal=self.settings.signal,
                  transcode=self.transcode_port, cascade=self.cascade_port,
                  cascade_media=list(self.cascade.address) if self.cascade else None)

    async def _open_cascade(self) -> None:
        """The links' UDP socket, and the core that routes what arrives on it (netcore.sfu.cascade)."""
        assert self.core is not None and self.settings.cascade is not None
        host, port = self.settings.cascade_media or (self.settings.cascade[0], 0)
        _, sock = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: DatagramSocket(self._receive), local_addr=(host, port))
        self.link_sockets[sock.local] = sock
        self.cascade = CascadeCore(self.core, self.name, sock.local)

    def _registration(self) -> ServerRecord:
        """This server in the tree's registry (netcore.sfu.topology)."""
        assert self.core is not None and self.cascade is not None and self.settings.cascade is not None
        url = self.settings.cascade_url
        if url is None:
            host, _ = self._public((self.settings.cascade[0], 0))
            url = f"ws://{f'[{host}]' if ':' in host else host}:{self.cascade_port}/"
        return ServerRecord(self.name, self.settings.tier, self.settings.region, url,
                            len(self.core.participants) + len(self.cascade.downlinks), self.settings.max_participants)

    async def _choose_upstream(self, avoid: frozenset[str]) -> str | None:
        """The registry's choice of the server to pull from, leaving out those that just failed us."""
        assert self.registry is not None
        records = [r for r in await self.registry.servers() if r.name != self.name and r.cascade not in avoid]
        chosen = choose_upstream(records, self.settings.tier, self.settings.region)
        return chosen.cascade if chosen is not None else None

    def _metrics(self) -> str:
        text = render_metrics(self.core) + self._studio_metrics() + self._socket_metrics()
        if self.cascade is not None:
            text += render_cascade_metrics(self.cascade, asyncio.get_running_loop().time())
        return text

    def _public(self, address: Address) -> Address:
        host, port = address
        v6 = ":" in host
        for ip in self.settings.public_ip:
            if (":" in ip) == v6:
                return ip, port
        if host in ("0.0.0.0", "::"):
            return ("::1" if v6 else "127.0.0.1"), port  # a lab server: say --public-ip for others
        return host, port

    @property
    def http_address(self) -> Address:
        assert self.http is not None
        return self.http.sockets[0].getsockname()[:2]

    @property
    def name(self) -> str:
        """This server's name at signaling: ``--name``, else its (first) public address."""
        if self.settings.name:
            return self.settings.name
        host, port = self._public(next(iter(self.sockets)))
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def media_port(self) -> int:
        return next(iter(self.sockets))[1]

    async def close(self) -> None:
        """Every participant gets BYE and close_notify; then the sockets, the link and HTTP close."""
        self._closing = True
        core, driver = self.core, self.driver
        if core is not None and driver is not None:
            now = asyncio.get_running_loop().time()
            for participant_id in list(core.participants):
                core.leave(participant_id, now, "shutdown")
            driver.flush()
            if self.recorder is not None:
                self.recorder.close(now)
            driver.close()
        if self.workers is not None:
            await self.workers.close()
        if self.registry is not None:
            await self.registry.close()
        if self.links is not None:
            await self.links.close()
        for sock in self.link_sockets.values():
            if sock.transport is not None:
                sock.transport.close()
        if self._announcements:
            await asyncio.wait(self._announcements, timeout=5)
        if self._alive_task is not None:
            self._alive_task.cancel()
        await cancel_and_wait(self._studio_task)
        self._mix_pool.shutdown(wait=False, cancel_futures=True)
        await cancel_and_wait(self._link_task)
        for sock in self.sockets.values():
            if sock.transport is not None:
                sock.transport.close()
        if self.http is not None:
            self.http.close()
            await self.http.wait_closed()
        if self.analytics is not None:
            self.analytics.close()  # after every participant left: their sfu.left events are written
        log_event("sfu.stopped")

    def health(self) -> dict:
        core = self.core
        return {"status": "ok", "name": self.name, "participants": len(core.participants) if core else 0,
                "rooms": len(core.rooms) if core else 0, "signal_linked": self._link is not None,
                "recording": len(self.recorder.rooms) if self.recorder else 0,
                "media_port": self.media_port, "uptime": round(time.monotonic() - self.started, 1),
                "transcode_workers": {name: list(load) for name, load in core.worker_load().items()} if core else {}}

    # -- media ------------------------------------------------------------------------

    def _receive(self, datagram: Receive) -> None:
        if self.driver is not None:
            self.driver.receive(datagram)

    def _receive_batch(self, datagrams: list[Receive]) -> None:
        """The media sockets' datagrams of one wake-up, the publishers' media before the feedback
        (netcore.demux.media_first; docs/sfu.md, "Reading a batch, media first")."""
        if self.driver is not None:
            self.driver.receive_batch(media_first(datagrams))

    def _readable(self, sock: CompiledSocket) -> None:
        """A compiled socket has datagrams: what the compiled path does not take goes through the driver as a
        batch, media first (as ``_receive_batch``); if it took packets, the core's replay of them is due by
        ``REPLAY_DELAY`` (netcore.sfu.fastpath)."""
        core, driver = self.core, self.driver
        if core is None or driver is None or sock.is_closing():
            return
        now = asyncio.get_running_loop().time()
        fast = core.fastpath
        replay_due = fast is not None and fast.replay_at is not None
        rest = core.read_socket(sock.fd, now)
        if rest:
            local, datagrams = sock.local, []
            for first, second in rest:
                if type(first) is bytes:
                    datagrams.append(Receive(first, second, local))
                    continue
                if datagrams:  # what was read before it, first
                    driver.receive_batch(media_first(datagrams))
                    datagrams = []
                core.taken_back(first, second, now)
                driver.flush()
            if datagrams:
                driver.receive_batch(media_first(datagrams))
        elif not replay_due and fast is not None and fast.replay_at is not None:
            driver.flush()  # a log started: the core's deadline (every wrapper's) now says when it replays

    def _send(self, transmit: Transmit) -> None:
        sock = self.sockets.get(transmit.source) if transmit.source is not None else None  # type: ignore[arg-type]
        if sock is None and self.cascade is not None and transmit.source is not None:  # a link's datagram
            sock = self.link_sockets.get(transmit.source)  # type: ignore[arg-type]
            if sock is None and self.links is not None:
                sock = self.links.sockets.get(transmit.source)  # type: ignore[arg-type]
        if sock is None:
            sock = next(iter(self.sockets.values()))
        if sock.transport is None or sock.transport.is_closing():
            return
        try:
            sock.transport.sendto(transmit.data, transmit.destination)
        except (OSError, ValueError):
            self.send_errors += 1

    def _on_event(self, event: object) -> None:
        if self.studios is not None and self.studios.studios:
            self.studios.on_event(event, asyncio.get_running_loop().time())  # type: ignore[arg-type]
        if self.recorder is not None and self.recorder.rooms:
            self.recorder.on_event(event, asyncio.get_running_loop().time())
        if self.workers is not None:
            self.workers.on_event(event)
        if self.links is not None:
            self.links.on_event(event)
        if isinstance(event, ParticipantJoined):
            log_event("participant.joined", room=event.room_id, participant=event.participant_id)
            self._emit("sfu.joined", event.room_id, event.participant_id, session_id=event.participant_id)
        elif isinstance(event, ParticipantLeft):
            log_event("participant.left", room=event.room_id, participant=event.participant_id, reason=event.reason,
                      duration=round(event.duration, 3), packets_received=event.packets_received,
                      packets_forwarded=event.packets_forwarded, bytes_forwarded=event.bytes_forwarded)
            self._emit("sfu.left", event.room_id, event.participant_id, reason=event.reason)
            if event.reason != "rejoined":  # the same session joins again at once: keep its user
                self._users.pop(event.participant_id, None)
        elif isinstance(event, LayerSwitched):
            self._emit("sfu.layer_switched", event.room_id, event.participant_id,
                       source=f"{event.publisher}/{event.mid}", from_layer=event.from_rid or "none",
                       to_layer=event.to_rid or "none")
        elif isinstance(event, KeyFrameRequested):
            self._emit("sfu.keyframe_requested", event.room_id, event.participant_id,
                       source=f"{event.participant_id}/{event.mid}", reason=event.reason)
        elif isinstance(event, SlotsChanged):
            self._push("media.slots", {"room_id": event.room_id, "session_id": event.participant_id,
                                       "slots": _slots(event.slots)})
        elif isinstance(event, ActiveSpeakerChanged):
            self._push("media.speaker", {"room_id": event.room_id, "session_id": event.participant_id})

    def _emit(self, name: str, room_id: str, participant_id: str, **fields: Any) -> None:
        """An analytics event about a participant (docs/analytics.md: a group call's id is its room's)."""
        user = self._users.get(participant_id)
        if self.analytics is not None and user is not None:
            self.analytics.emit(name, call_id=room_id, user=user, **fields)

    # -- the service link ---------------------------------------------------------------

    def _push(self, kind: str, payload: dict) -> None:
        send_message(self._link, kind, payload)  # (a link that dropped: the loop reconnects, the client re-offers)

    async def _service_loop(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        delay = RECONNECT_DELAY[0]
        headers = {"Authorization": f"Bearer {self.settings.service_secret}"}
        url = self.settings.signal
        url += ("&" if "?" in url else "?") + "server=" + quote(self.name, safe="")
        while not self._closing:
            reports = None
            try:
                async with connect(url, additional_headers=headers, max_size=2**20) as ws:
                    self._link = ws
                    delay = RECONNECT_DELAY[0]
                    log_event("service.linked", signal=self.settings.signal, name=self.name)
                    if self._linked_before:
                        self._drop_all("relinked")  # signaling moved our rooms when the link went
                    self._linked_before = True
                    reports = asyncio.get_running_loop().create_task(self._report_load(ws))
                    async for text in ws:
                        self._on_link_message(text)
            except (OSError, WebSocketException, asyncio.TimeoutError) as exc:
                log_event("service.unlinked", reason=str(exc) or type(exc).__name__)
            finally:
                self._link = None
                if reports is not None:
                    reports.cancel()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_DELAY[1])

    def load(self, now: float) -> dict:
        """The ``service.load`` report: participants, rooms, published tracks, forwarded packets per
        second since the previous report."""
        core = self.core
        assert core is not None
        forwarded = core.stats.forwarded_packets
        rate = 0.0
        if self._last_count is not None and now > self._last_count[0]:
            rate = (forwarded - self._last_count[1]) / (now - self._last_count[0])
        self._last_count = (now, forwarded)
        return {"participants": len(core.participants), "rooms": len(core.rooms),
                "tracks": sum(len(p.publications) for p in core.participants.values()),
                "packets_per_second": round(rate, 1)}

    async def _report_load(self, ws: Any) -> None:
        """Every REPORT_INTERVAL while linked, so that signaling sees we are alive and how busy."""
        loop = asyncio.get_running_loop()
        while True:
            text = json.dumps({"v": 1, "type": "service.load", "payload": self.load(loop.time())})
            try:
                await ws.send(text)
            except Exception:  # the link dropped: the service loop reconnects
                return
            await asyncio.sleep(REPORT_INTERVAL)

    def _drop_all(self, reason: str) -> None:
        core, driver = self.core, self.driver
        assert core is not None and driver is not None
        now = asyncio.get_running_loop().time()
        for room_id in list(self.studios.studios if self.studios is not None else ()):
            self.studios.stop(room_id, now)  # type: ignore[union-attr]
        for participant_id in list(core.participants):
            core.leave(participant_id, now, reason)
        driver.flush()

    def _on_link_message(self, text: str | bytes) -> None:
        try:
            message = json.loads(text)
            kind, payload = message.get("type"), message.get("payload") or {}
        except (ValueError, AttributeError):
            log_event("service.bad_message")
            return
        if kind == "media.offer":
            self._offer(payload)
        elif kind == "media.leave":
            self._leave(payload)
        elif kind == "media.quality":
            self._quality(payload)
        elif kind in ("recording.start", "recording.stop"):
            self._record(kind == "recording.start", str(payload.get("room_id")), str(payload.get("by", "")))
        elif kind in ("studio.start", "studio.stop", "studio.cut", "studio.audio", "studio.card"):
            self._studio(kind, payload)
        elif kind not in ("ack", "error"):
            log_event("service.unknown_message", type=kind)

    # -- studios (docs/broadcast.md) ------------------------------------------------------

    def _studio(self, kind: str, payload: dict) -> None:
        """An operator's command, as signaling relayed it (it checked that the sender is the operator)."""
        studios, driver = self.studios, self.driver
        assert studios is not None and driver is not None
        room_id, by = str(payload.get("room_id")), str(payload.get("by", ""))
        now = asyncio.get_running_loop().time()
        try:
            if kind == "studio.start":
                studios.start(room_id, by, now)
            elif kind == "studio.stop":  # the program leaves: viewers are given the cameras again
                if not studios.stop(room_id, now):
                    raise UsageError(f"room {room_id!r} is no studio")
            else:
                studios.command(kind, room_id, payload, now)
        except NetcoreError as exc:
            log_event("studio.refused", room=room_id, command=kind, by=by, reason=str(exc))
            return
        log_event("studio." + kind.split(".")[1], room=room_id, by=by,
                  source=payload.get("source") if kind not in ("studio.start", "studio.stop") else None)
        driver.flush()
        self._tell_studios()

    def _mix(self, work, done, now: float) -> None:
        """Run a frame of a studio's audio mix on the mixing thread; ``done`` puts it on air back on the loop."""
        loop = asyncio.get_running_loop()

        def finished(future: asyncio.Future) -> None:
            if future.cancelled() or self.driver is None:
                return
            if future.exception() is not None:
                log_event("studio.mix_failed", reason=str(future.exception()))
                return
            done(future.result(), loop.time())
            self.driver.flush()

        loop.run_in_executor(self._mix_pool, work).add_done_callback(finished)

    async def _run_studios(self) -> None:
        """The cards' frames when due, and each studio's state told when it changed (a cut takes effect at
        the new source's key frame, after the command)."""
        loop = asyncio.get_running_loop()
        while True:
            studios = self.studios
            deadline = studios.next_deadline() if studios is not None else None
            wait = STUDIO_TICK if deadline is None else max(0.0, min(STUDIO_TICK, deadline - loop.time()))
            await asyncio.sleep(wait)
            if studios is None or not studios.studios:
                continue
            try:
                studios.handle_timeout(loop.time())
                if self.driver is not None:
                    self.driver.flush()
                self._tell_studios()
            except Exception as exc:  # one studio's failure must not stop every card and mix
                log_event("studio.error", reason=repr(exc))

    def _studio_metrics(self) -> str:
        """The studios' series (Prometheus text), after the core's."""
        studios = self.studios
        if studios is None:
            return ""
        totals = studios.counters()
        series = [("sfu_studios", "gauge", "Studio rooms with a program", len(studios.studios))] + [
            (f"sfu_studio_{name}_total", "counter", text, totals.get(name, 0)) for name, text in STUDIO_COUNTERS]
        return series_text(series)

    def _socket_metrics(self) -> str:
        """What the compiled sockets' send queues dropped (Prometheus text), when the sockets are compiled."""
        compiled = [sock for sock in self.sockets.values() if isinstance(sock, CompiledSocket)]
        if not compiled:
            return ""
        text = f"Datagrams dropped because the media socket's buffer was full with {WRITE_QUEUE} more already waiting"
        return series_text([("sfu_send_queue_dropped_total", "counter", text, sum(s.dropped for s in compiled))])

    def _tell_studios(self) -> None:
        """``studio.state`` to signaling (for the studio room's sessions) for each studio whose state changed."""
        assert self.studios is not None
        for room_id in [r for r in self._studio_states if r not in self.studios.studios]:
            del self._studio_states[room_id]  # ended (its room emptied)
        for room_id, studio in self.studios.studios.items():
            state = studio.state()
            if self._studio_states.get(room_id) != state:
                self._studio_states[room_id] = state
                self._push("studio.state", state)

    # -- recording (docs/recording.md) ---------------------------------------------------

    def _open_journal(self, room_id: str, now: float) -> DirectoryStorage:
        """A new journal directory for a recording of ``room_id``: ROOM-YYYYMMDDTHHMMSSZ[-N] under --record-dir."""
        root = Path(self.settings.recordings)
        root.mkdir(parents=True, exist_ok=True)
        base = recording_name(room_id, time.time(), suffix="")
        path, n = root / base, 1
        while path.exists():
            n += 1
            path = root / f"{base}-{n}"
        log_event("recording.journal", room=room_id, directory=str(path))
        return DirectoryStorage(path)

    async def _mark_recordings_alive(self) -> None:
        """Touch each live recording's manifest: a room where nobody sends (everyone muted, audio DTX)
        writes nothing, and a worker must not take it for one whose call server died."""
        while True:
            await asyncio.sleep(ALIVE_INTERVAL)
            for storage in self.recorder.storages() if self.recorder is not None else ():
                try:
                    os.utime(Path(storage.directory) / MANIFEST_NAME)
                except OSError:
                    pass

    def _recording_ended(self, room_id: str, storage: DirectoryStorage) -> None:
        """A journal is complete: a worker may take it (at once through Redis, else its directory scan)."""
        directory = str(Path(storage.directory).resolve())
        log_event("recording.ended", room=room_id, directory=directory)
        started = self._recording_started.pop(room_id, None)
        if self.analytics is not None and started is not None:
            written = sum(f.stat().st_size for f in Path(directory).rglob("*") if f.is_file())
            self.analytics.emit("recording.stopped", call_id=room_id, recording_id=Path(directory).name,
                                duration=round(asyncio.get_running_loop().time() - started, 3), bytes=written)
        if self.settings.recordings_redis:
            self._announcements = [f for f in self._announcements if not f.done()]
            self._announcements.append(asyncio.ensure_future(self._announce(room_id, directory)))

    async def _announce(self, room_id: str, directory: str) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        client = aioredis.from_url(self.settings.recordings_redis)
        try:
            await client.lpush(RECORDINGS_LIST, json.dumps({"room_id": room_id, "directory": directory}))
        except (RedisError, OSError) as exc:  # the worker's scan still finds it
            log_event("recording.announce_failed", room=room_id, reason=str(exc))
        finally:
            await client.aclose()

    def _record(self, start: bool, room_id: str, by: str) -> None:
        recorder, driver = self.recorder, self.driver
        assert recorder is not None and driver is not None
        now = asyncio.get_running_loop().time()
        try:
            changed = recorder.start(room_id, now) if start else recorder.stop(room_id, now)
        except (OSError, NetcoreError) as exc:
            log_event("recording.failed", room=room_id, reason=str(exc))
            return
        if changed:
            log_event("recording.started" if start else "recording.stopped", room=room_id, by=by)
            if start and self.analytics is not None:
                self._recording_started[room_id] = now
                self.analytics.emit("recording.started", call_id=room_id, by=by,
                                    recording_id=Path(recorder.storage(room_id).directory).name)
        driver.flush()

    def _offer(self, payload: dict) -> None:
        core, driver = self.core, self.driver
        assert core is not None and driver is not None
        room_id, session_id = str(payload.get("room_id")), str(payload.get("session_id"))
        if payload.get("user"):
            self._users[session_id] = str(payload["user"])
        now = asyncio.get_running_loop().time()
        try:
            answer, slots = core.join(room_id, session_id, str(payload.get("sdp", "")), now)
        except NetcoreError as exc:
            log_event("participant.refused", room=room_id, participant=session_id, reason=str(exc))
            self._users.pop(session_id, None)
            self._push("media.answer", {"room_id": room_id, "session_id": session_id, "error": str(exc)})
            driver.flush()
            return
        self._push("media.answer", {"room_id": room_id, "session_id": session_id, "sdp": answer,
                                    "slots": _slots(slots)})
        driver.flush()

    def _quality(self, payload: dict) -> None:
        """A subscriber's requested maximum height for one track (the layer allocator's cap)."""
        core, driver = self.core, self.driver
        assert core is not None and driver is not None
        height, fps = payload.get("max_height"), payload.get("max_fps")
        try:
            core.request_max_height(str(payload.get("session_id")), str(payload.get("publisher")),
                                    str(payload.get("track")), int(height) if height is not None else None,
                                    asyncio.get_running_loop().time(), float(fps) if fps is not None else None)
        except (NetcoreError, ValueError, TypeError) as exc:
            log_event("quality.refused", room=payload.get("room_id"), participant=payload.get("session_id"),
                      reason=str(exc))
            return
        driver.flush()

    def _leave(self, payload: dict) -> None:
        core, driver = self.core, self.driver
        assert core is not None and driver is not None
        core.leave(str(payload.get("session_id")), asyncio.get_running_loop().time(), "left")
        driver.flush()
