"""The call server against Janus' VideoRoom: one publisher, N receive-only subscribers, real processes.

One publisher replays VP8-shaped video (30 frames/s of three 1,150-byte
packets, a key frame every 2 s and on request) and Opus-shaped audio (one
100-byte packet per 20 ms), about 0.9 Mbit/s, over one of our
:class:`MediaTransport` (ICE, DTLS, SRTP, RTCP, TWCC; no encoder, so the
publisher's CPU is small and the same for both servers). It sends through

* ``netcore-sfu``, linked to ``netcore-signal`` (offers relayed over the
  service link, as ``tests/sfu/live.py`` starts them), and
* ``janus`` 1.1 with only its VideoRoom plugin and HTTP transport, ICE-lite
  as our server is, a fresh configuration folder and a free RTP port range,
  in a room made for the run (Opus + VP8, no recording, no bitrate cap),

to N subscribers that only receive: one :class:`MediaTransport` each (ICE,
DTLS, SRTP, receiver reports and TWCC feedback; nothing decoded), spread
over worker processes (``--workers``, default 2) so that the publisher's
process does nothing but send. Every media packet carries a marker and a
counter in its payload, past the VP8 descriptor that the servers rewrite;
the publisher notes the time each counter left its socket, each subscriber
the time it arrived, on the machine's monotonic clock (``time.monotonic``,
the same in every process). Per server and N, over a fixed window after a
warm-up:

* CPU microseconds of the server process (``/proc/PID/stat`` utime +
  stime, every thread) per packet counted at the subscribers;
* publisher-to-subscriber latency p50 and p99 (server time plus the two
  endpoints' own, which is the same for both servers: the ratio is of
  totals, not of what each server adds alone);
* loss: counters sent in the window that a subscriber never saw.

Each N runs both servers one after the other (order alternating per
round), and the ratios ours/Janus are printed; a row of netcore-sfu also
shows its own counters over the window (packets received from the
publisher, forwarded, dropped by reason) and its subscribers' send-side
estimates, which its pacers follow. Usage:
``python bench/sfu_janus.py [--seconds S] [--rounds R] [--workers W] [N ...]``
(default 10 50).

Subscribers per core: this machine's two cores cannot both run a server
at full load and take in its hundreds of subscribers' copies, so the
largest N per core is measured on a share of one: ``--cpu-share 0.25``
holds each server to a quarter of a core (a cgroup with CFS bandwidth
control, 10 ms periods; root), and a server *carries* N there when every
round lost under 0.5 % and it used under 90 % of its share (a saturated
server queues: its loss stays low for a while as its latency climbs). N on a
quarter is 4N per core; the server's fixed cost (the publisher's stream,
timers) is counted against the quarter whole, so the figure errs low.
``--video-kbps 1000`` sends a 1 Mbit/s video (frames cut into equal
packets of at most 1,150 bytes, as browsers do: four of 1,042 bytes), and
``--only netcore-sfu`` runs one server. For example
``python bench/sfu_janus.py --cpu-share 0.25 --video-kbps 1000 --workers 3 --seconds 20 125 140``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _cgroup import CGROUP_PERIOD_US, cpu_share  # noqa: E402
from netcore.dtls.certificate import DtlsCertificate  # noqa: E402
from netcore.peer.aio import TransportConnection  # noqa: E402
from netcore.peer.config import config_from_negotiated  # noqa: E402
from netcore.peer.events import KeyFrameRequested, RtpReceived  # noqa: E402
from netcore.peer.transport import MediaTransport  # noqa: E402
from netcore.rtp.packet import RtpPacket  # noqa: E402
from netcore.rtp.vp8 import Vp8Descriptor  # noqa: E402
from netcore.sdp.attributes import Fingerprint  # noqa: E402
from netcore.sdp.candidate import Candidate  # noqa: E402
from netcore.sdp.jsep import Negotiator  # noqa: E402
from netcore.sdp.model import LocalTransport, MediaIntent  # noqa: E402

MARK = b"NCBM"  # what precedes the counter in every benchmark payload
FPS = 30
VIDEO_PACKETS = 3  # per frame (--video-kbps sets both)
VIDEO_SIZE = 1150  # payload bytes per video packet
MAX_VIDEO_SIZE = 1150  # a frame is cut into packets of at most this, as browsers do (about 1,200 bytes)
AUDIO_SIZE = 100
KEYFRAME_EVERY = 2 * FPS
# The publisher's estimate is pinned here and REMB ignored: a replay has no encoder to slow down, so
# no server's feedback may pace it (its queue would be the publisher's latency, not the server's).
PUBLISHER_BITRATE = 2_500_000
LOCALHOST = "127.0.0.1"
RECEIVE_BUFFER = 4 << 20  # each endpoint's SO_RCVBUF (the kernel caps it at net.core.rmem_max)
_HOST_PRIORITY = (126 << 24) | (65535 << 8) | 255  # RFC 8445 section 5.1.2.1, component 1


def free_udp_port(host: str = LOCALHOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads (``/proc/PID/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 1)[0]


def set_video_rate(kbps: float) -> None:
    """Frames of ``kbps`` kbit/s at :data:`FPS`, cut into equal packets of at most :data:`MAX_VIDEO_SIZE`."""
    global VIDEO_PACKETS, VIDEO_SIZE
    frame = round(kbps * 1000 / 8 / FPS)
    VIDEO_PACKETS = -(-frame // MAX_VIDEO_SIZE)
    VIDEO_SIZE = -(-frame // VIDEO_PACKETS)


# -- endpoints -------------------------------------------------------------------------


class Endpoint:
    """Our side of one leg to a server: a negotiator whose SDP names one host candidate,
    then a :class:`MediaTransport` on that candidate's socket."""

    def __init__(self, certificate: DtlsCertificate, intents: list[MediaIntent], host: str = LOCALHOST) -> None:
        self.certificate = certificate
        self.intents = intents
        self.host = host
        self.port = free_udp_port(host)
        candidate = Candidate("1", 1, "udp", _HOST_PRIORITY, host, self.port, "host")
        local = LocalTransport((Fingerprint("sha-256", certificate.fingerprint()),), candidates=(candidate,),
                               end_of_candidates=True)
        self.negotiator = Negotiator(local)
        self.connection: TransportConnection | None = None

    async def start(self, session, remote_sdp: str, send_ssrcs: dict | None = None, **options) -> None:
        from tests.sfu.harness import with_rtx_pairs
        config = config_from_negotiated(session, self.certificate, send_ssrcs=send_ssrcs, **options)
        self.connection = TransportConnection(MediaTransport(with_rtx_pairs(config, remote_sdp)),
                                              on_event=self.on_event)
        await self.connection.bind([self.host], self.port)
        for endpoint in self.connection._sockets.values():  # a burst of copies must not overflow a busy worker
            endpoint.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                                                   RECEIVE_BUFFER)
        self.connection.start()

    def on_event(self, event: object) -> None:
        pass

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


class Subscriber(Endpoint):
    """Receives one audio and one video stream; notes (counter, arrival) per packet, decodes nothing."""

    def __init__(self, certificate: DtlsCertificate, host: str = LOCALHOST) -> None:
        super().__init__(certificate, [MediaIntent("audio", direction="recvonly"),
                                       MediaIntent("video", direction="recvonly")], host)
        self.arrivals: list[tuple[int, float]] = []
        self.mids: set[str] = set()  # the sections media arrived on

    def on_event(self, event: object) -> None:
        if isinstance(event, RtpReceived):
            self.mids.add(event.mid)
            payload = event.packet.payload
            at = payload.find(MARK)
            if at >= 0:
                self.arrivals.append((struct.unpack_from("!I", payload, at + 4)[0], time.monotonic()))


class Publisher(Endpoint):
    """Sends the replayed streams; notes when each counter's datagram left the socket."""

    AUDIO_SSRC, VIDEO_SSRC = 0x5EED0001, 0x5EED0002

    def __init__(self, certificate: DtlsCertificate, host: str = LOCALHOST) -> None:
        super().__init__(certificate, [MediaIntent("audio", direction="sendonly", ssrc=self.AUDIO_SSRC),
                                       MediaIntent("video", direction="sendonly", ssrc=self.VIDEO_SSRC)], host)
        self.sent: dict[int, float] = {}  # counter -> time its datagram was handed to the socket
        self._pending: dict[tuple[int, int], int] = {}  # (ssrc, sequence number) -> counter
        self.counter = itertools.count(1)
        self.keyframe_wanted = True
        self.seq = {self.AUDIO_SSRC: 1, self.VIDEO_SSRC: 1}
        self.pts: dict[str, int] = {}
        self.picture_id = 0

    async def start(self, session, remote_sdp: str, send_ssrcs=None, **options) -> None:
        mids = [m.mid for m in session.media]
        ssrcs = {mid: (i.ssrc, None) for mid, i in zip(mids, self.intents)}
        for media in session.media:
            if media.send_codecs:
                self.pts[media.kind] = media.send_codecs[0].payload_type
        await super().start(session, remote_sdp, ssrcs, initial_bitrate=PUBLISHER_BITRATE, remb=False,
                            min_bitrate=PUBLISHER_BITRATE, max_bitrate=PUBLISHER_BITRATE)
        driver = self.connection.driver
        send = driver.send  # stamp at the socket, after pacing and SRTP

        def stamped(transmit) -> None:
            data = transmit.data
            if len(data) >= 12 and data[0] & 0xC0 == 0x80 and not 192 <= data[1] <= 223:
                counter = self._pending.pop((int.from_bytes(data[8:12], "big"), (data[2] << 8) | data[3]), None)
                send(transmit)
                if counter is not None:
                    self.sent[counter] = time.monotonic()
                return
            send(transmit)
        driver.send = stamped

    def on_event(self, event: object) -> None:
        if isinstance(event, KeyFrameRequested):
            self.keyframe_wanted = True

    def _packet(self, kind: str, ssrc: int, payload: bytes, timestamp: int, marker: bool) -> RtpPacket:
        seq = self.seq[ssrc]
        self.seq[ssrc] = (seq + 1) & 0xFFFF
        return RtpPacket.build(payload_type=self.pts[kind], sequence_number=seq, timestamp=timestamp,
                               ssrc=ssrc, payload=payload, marker=marker)

    def _send(self, packet: RtpPacket, counter: int) -> None:
        # the sequence number it leaves with: the sender moves its own past the padding of probes
        offset = self.connection.transport.sender.streams[packet.ssrc].seq_offset
        self._pending[(packet.ssrc, (packet.sequence_number + offset) & 0xFFFF)] = counter
        self.connection.send_rtp(packet)

    def send_audio(self, now: float) -> None:
        counter = next(self.counter)
        body = MARK + struct.pack("!I", counter)
        self._send(self._packet("audio", self.AUDIO_SSRC, body + bytes(AUDIO_SIZE - len(body)),
                                int(now * 48000) & 0xFFFFFFFF, False), counter)

    def send_frame(self, now: float, frame: int) -> None:
        key = self.keyframe_wanted or frame % KEYFRAME_EVERY == 0
        self.keyframe_wanted = False
        pid = self.picture_id
        self.picture_id = (pid + 1) & 0x7FFF
        # RFC 6386 section 9.1: frame tag (P bit clear on a key frame), then start code and size
        header = (b"\x10\x02\x00\x9d\x01\x2a\x80\x02\xe0\x01" if key else b"\x11\x02\x00")
        timestamp = int(now * 90000) & 0xFFFFFFFF
        for i in range(VIDEO_PACKETS):
            counter = next(self.counter)
            descriptor = Vp8Descriptor(i == 0, 0, picture_id=pid).serialize()
            body = (header if i == 0 else b"") + MARK + struct.pack("!I", counter)
            payload = descriptor + body + bytes(VIDEO_SIZE - len(descriptor) - len(body))
            self._send(self._packet("video", self.VIDEO_SSRC, payload, timestamp, i == VIDEO_PACKETS - 1), counter)

    async def run(self, stop: asyncio.Event) -> None:
        """Audio every 20 ms, a frame every 1/FPS s, on the loop's clock, until ``stop``."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        audio = video = 0
        while not stop.is_set():
            now = loop.time()
            while start + audio * 0.02 <= now:
                self.send_audio(start + audio * 0.02)
                audio += 1
            while start + video / FPS <= now:
                self.send_frame(start + video / FPS, video)
                video += 1
            await asyncio.sleep(min(start + audio * 0.02, start + video / FPS) - loop.time())


# -- subscribers in worker processes ---------------------------------------------------


class SubscriberPool:
    """N subscribers spread over worker processes (``--worker``), so that the publisher's process only
    sends and the subscribers' decryption is spread over the cores: one JSON line per request and
    reply on each worker's stdin/stdout. Subscriber ``i`` lives in worker ``i % workers``."""

    def __init__(self, n: int, workers: int, host: str) -> None:
        self.n, self.host = n, host
        self.workers = max(1, min(workers, n))
        self._procs: list[asyncio.subprocess.Process] = []
        self._locks: list[asyncio.Lock] = []

    async def open(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        for _ in range(self.workers):
            self._procs.append(await asyncio.create_subprocess_exec(
                sys.executable, os.path.abspath(__file__), "--worker", self.host, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, env=env, limit=1 << 26))
            self._locks.append(asyncio.Lock())

    async def _call(self, worker: int, op: str, **args: object) -> object:
        proc = self._procs[worker]
        async with self._locks[worker]:
            proc.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
            await proc.stdin.drain()
            line = await proc.stdout.readline()
        if not line:
            raise RuntimeError(f"subscriber worker {worker} exited")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"subscriber worker {worker}: {reply['error']}")
        return reply["result"]

    async def offer(self, i: int) -> str:
        """Subscriber ``i``'s offer (it offers to netcore-sfu)."""
        return await self._call(i % self.workers, "offer", i=i)

    async def accept(self, i: int, answer: str) -> None:
        await self._call(i % self.workers, "accept", i=i, sdp=answer)

    async def answer(self, i: int, offer: str) -> str:
        """Subscriber ``i``'s answer to ``offer`` (Janus offers to its subscribers), its transport started."""
        return await self._call(i % self.workers, "answer", i=i, sdp=offer)

    async def _all(self, op: str, **args: object) -> list:
        return await asyncio.gather(*(self._call(w, op, **args) for w in range(self.workers)))

    async def connected(self, timeout: float) -> int:
        return sum(await self._all("connected", timeout=timeout))

    async def received(self) -> int:
        return sum(await self._all("received"))

    async def arrivals(self, first: int, last: int) -> tuple[list[list[tuple[int, float]]], list[int]]:
        """Per subscriber, the first arrival of each counter in ``first..last``; and the sections each
        received media on."""
        arrivals: list[list[tuple[int, float]]] = []
        mids: list[int] = []
        for part in await self._all("arrivals", first=first, last=last):
            arrivals += part["arrivals"]
            mids += part["mids"]
        return arrivals, mids

    async def close(self) -> None:
        for w, proc in enumerate(self._procs):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._call(w, "close"), 10)
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


async def worker(host: str) -> None:
    """The ``--worker`` side of :class:`SubscriberPool`: subscribers made on demand, requests served in order."""
    certificate = DtlsCertificate.generate()
    subscribers: dict[int, Subscriber] = {}
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer

    async def serve(op: str, args: dict) -> object:
        if op == "offer":
            sub = subscribers[args["i"]] = Subscriber(certificate, host)
            return str(sub.negotiator.create_offer(sub.intents))
        if op == "accept":
            sub = subscribers[args["i"]]
            await sub.start(sub.negotiator.handle_answer(args["sdp"]), args["sdp"])
            return None
        if op == "answer":
            sub = subscribers[args["i"]] = Subscriber(certificate, host)
            answer, session = sub.negotiator.handle_offer(args["sdp"], sub.intents)
            await sub.start(session, args["sdp"])
            return str(answer)
        if op == "connected":
            return await wait_connected(list(subscribers.values()), args["timeout"])
        if op == "received":
            return sum(len(s.arrivals) for s in subscribers.values())
        if op == "arrivals":
            first, last = args["first"], args["last"]
            arrivals = []
            for sub in subscribers.values():
                seen: dict[int, float] = {}
                for counter, at in sub.arrivals:
                    if first <= counter <= last and counter not in seen:
                        seen[counter] = at
                arrivals.append(list(seen.items()))
            return {"arrivals": arrivals, "mids": [len(s.mids) for s in subscribers.values()]}
        if op == "close":
            for sub in subscribers.values():
                sub.close()
            return None
        raise ValueError(f"unknown op {op}")

    while line := await reader.readline():
        request = json.loads(line)
        op = request.pop("op")
        try:
            reply = {"result": await serve(op, request)}
        except Exception as exc:  # reported to the pool, which raises it there
            reply = {"error": repr(exc)}
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()
        if op == "close":
            break


# -- Janus -----------------------------------------------------------------------------


JANUS_CONFIG = """general: {{
    configs_folder = "{conf}"
    plugins_folder = "{lib}/plugins"
    transports_folder = "{lib}/transports"
    events_folder = "{lib}/events"
    loggers_folder = "{lib}/loggers"
    debug_level = 3
    admin_secret = "{secret}"
    session_timeout = 120
}}
media: {{
    rtp_port_range = "{low}-{high}"
}}
nat: {{
    ice_lite = true
    nice_debug = false
    ice_enforce_list = "lo"
}}
plugins: {{
    disable = "{plugins}"
}}
transports: {{
    disable = "{transports}"
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
events: {{
    broadcast = false
}}
"""

JANUS_HTTP = """general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    port = {port}
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
"""

JANUS_VIDEOROOM = "general: {\n}\n"
JANUS_LIB = "/usr/lib/x86_64-linux-gnu/janus"


def _others(folder: str, keep: str) -> str:
    return ",".join(sorted(f for f in os.listdir(f"{JANUS_LIB}/{folder}")
                           if f.endswith(".so") and f != keep))


@contextlib.contextmanager
def janus_process(workdir: Path, rtp_ports: tuple[int, int]):
    """``janus`` with only the VideoRoom plugin and the HTTP transport, from a fresh configuration folder:
    yields ``(process, http_port)`` once it answers ``info``."""
    conf = workdir / "janus-conf"
    conf.mkdir(parents=True, exist_ok=True)
    port = free_tcp_port()
    (conf / "janus.jcfg").write_text(JANUS_CONFIG.format(
        conf=conf, lib=JANUS_LIB, secret=os.urandom(8).hex(), low=rtp_ports[0], high=rtp_ports[1],
        plugins=_others("plugins", "libjanus_videoroom.so"), transports=_others("transports", "libjanus_http.so")))
    (conf / "janus.transport.http.jcfg").write_text(JANUS_HTTP.format(port=port))
    (conf / "janus.plugin.videoroom.jcfg").write_text(JANUS_VIDEOROOM)
    log = workdir / "janus.log"
    proc = subprocess.Popen([shutil.which("janus") or "janus", "-F", str(conf), "-L", str(log), "-N",
                             f"--interface={LOCALHOST}", f"--rtp-port-range={rtp_ports[0]}-{rtp_ports[1]}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _post(port, "", {"janus": "info"}).get("janus") == "server_info":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"janus did not come up: {log.read_text() if log.exists() else ''}")
            time.sleep(0.1)
        yield proc, port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def janus_host() -> str:
    """The IPv4 address Janus gathers its host candidate on: libnice leaves loopback interfaces out, so
    the first address of another interface of this machine (the kernel still delivers to it over ``lo``)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        return line.split()[3].split("/")[0]
    raise RuntimeError("no non-loopback IPv4 address for Janus' host candidate")


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


_transactions = itertools.count(1)


def _post(port: int, path: str, body: dict) -> dict:
    """One Janus API request (a ``transaction`` added unless given): the JSON reply."""
    body = {"transaction": str(next(_transactions)), **body}
    request = urllib.request.Request(f"http://{LOCALHOST}:{port}/janus{path}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _get(port: int, path: str) -> object:
    with urllib.request.urlopen(f"http://{LOCALHOST}:{port}/janus{path}", timeout=40) as response:
        return json.loads(response.read())


class JanusSession:
    """One Janus API session over HTTP with its long poll: requests, and the plugin events
    (with their JSEP) answered to each asynchronous request, by transaction."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.session = 0
        self._waiting: dict[str, asyncio.Future] = {}
        self._webrtcup: dict[int, asyncio.Future] = {}  # by handle: set when Janus says its transport is up
        self._poll: asyncio.Task | None = None

    async def open(self) -> None:
        self.session = (await self._request("", {"janus": "create"}))["data"]["id"]
        self._poll = asyncio.ensure_future(self._long_poll())

    async def _request(self, path: str, body: dict) -> dict:
        reply = await asyncio.to_thread(_post, self.port, path, body)
        if reply.get("janus") == "error":
            raise RuntimeError(f"janus: {reply}")
        return reply

    async def attach(self) -> int:
        reply = await self._request(f"/{self.session}", {"janus": "attach", "plugin": "janus.plugin.videoroom"})
        return reply["data"]["id"]

    async def sync(self, handle: int, body: dict) -> dict:
        """A request the plugin answers at once (``create``): its ``plugindata``."""
        reply = await self._request(f"/{self.session}/{handle}", {"janus": "message", "body": body})
        data = reply["plugindata"]["data"]
        if "error" in data:
            raise RuntimeError(f"videoroom: {data}")
        return data

    async def message(self, handle: int, body: dict, jsep: dict | None = None, timeout: float = 20) -> dict:
        """An asynchronous request: the event it caused (``plugindata.data`` and ``jsep``)."""
        message = {"janus": "message", "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        transaction = message["transaction"] = str(next(_transactions))
        future = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = future  # before the request: its event may come back first
        reply = await self._request(f"/{self.session}/{handle}", message)
        if reply.get("janus") == "event":  # answered at once
            self._waiting.pop(transaction, None)
            return reply
        event = await asyncio.wait_for(future, timeout)
        data = event["plugindata"]["data"]
        if "error" in data:
            raise RuntimeError(f"videoroom: {data}")
        return event

    def _up(self, handle: int) -> asyncio.Future:
        if handle not in self._webrtcup:
            self._webrtcup[handle] = asyncio.get_running_loop().create_future()
        return self._webrtcup[handle]

    async def webrtcup(self, handle: int, timeout: float = 20) -> None:
        """Until Janus has told the plugin that ``handle``'s transport is up (its ``webrtcup`` event).
        The VideoRoom offers a publisher's feed to subscribers only from then on ("No such feed" before),
        and Janus may get there a little after our side of the handshake has finished."""
        await asyncio.wait_for(asyncio.shield(self._up(handle)), timeout)

    async def trickle_done(self, handle: int) -> None:
        await self._request(f"/{self.session}/{handle}", {"janus": "trickle", "candidate": {"completed": True}})

    async def _long_poll(self) -> None:
        while True:
            try:
                events = await asyncio.to_thread(_get, self.port, f"/{self.session}?maxev=20")
            except OSError:
                await asyncio.sleep(0.1)
                continue
            for event in events if isinstance(events, list) else [events]:
                if event.get("janus") == "webrtcup":
                    up = self._up(event.get("sender", 0))
                    if not up.done():
                        up.set_result(None)
                if event.get("janus") != "event":
                    continue  # keepalive, webrtcup, media, slowlink ...
                future = self._waiting.pop(event.get("transaction", ""), None)
                if future is not None and not future.done():
                    future.set_result(event)

    async def close(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
        with contextlib.suppress(OSError, RuntimeError):
            await self._request(f"/{self.session}", {"janus": "destroy"})


_rooms = itertools.count(4242)


async def janus_room(port: int, publisher: Publisher, subscribers: SubscriberPool) -> JanusSession:
    """A fresh VideoRoom (Opus + VP8, no recording, no bitrate cap) with ``publisher`` publishing and every
    subscriber subscribed to its feed; transports started. The session stays open for the caller to close."""
    api = JanusSession(port)
    await api.open()
    room = next(_rooms)
    admin = await api.attach()
    await api.sync(admin, {"request": "create", "room": room, "publishers": 1, "audiocodec": "opus",
                           "videocodec": "vp8", "record": False, "bitrate": 0, "notify_joining": False,
                           "is_private": False})
    handle = await api.attach()
    offer = str(publisher.negotiator.create_offer(publisher.intents))
    event = await api.message(handle, {"request": "joinandconfigure", "room": room, "ptype": "publisher",
                                       "display": "pub", "audio": True, "video": True},
                              {"type": "offer", "sdp": offer})
    feed = event["plugindata"]["data"]["id"]
    answer = event["jsep"]["sdp"]
    await publisher.start(publisher.negotiator.handle_answer(answer), answer)
    await api.trickle_done(handle)
    await wait_connected([publisher], 20)
    await api.webrtcup(handle)  # a feed is offered to subscribers once Janus has its transport up too
    for i in range(subscribers.n):
        handle = await api.attach()
        event = await api.message(handle, {"request": "join", "room": room, "ptype": "subscriber",
                                           "streams": [{"feed": feed}]})
        answer = await subscribers.answer(i, event["jsep"]["sdp"])
        await api.message(handle, {"request": "start"}, {"type": "answer", "sdp": answer})
        await api.trickle_done(handle)
    return api


# -- netcore-sfu -----------------------------------------------------------------------


async def netcore_room(signal_port: int, publisher: Publisher, subscribers: SubscriberPool, tag: str) -> list:
    """A signaling room of ``1 + N`` users (above the threshold, so it is the call server's); the publisher's
    offer and every subscriber's go through ``room.media``. Returns the signaling clients to close."""
    from tests.sfu.live import offer_to_call_server, users_in_a_room
    names = [f"bench_{tag}_{i}" for i in range(subscribers.n + 1)]
    room_id, clients = await users_in_a_room(signal_port, names)
    offer = str(publisher.negotiator.create_offer(publisher.intents))
    answer = (await offer_to_call_server(clients[0], room_id, offer))["sdp"]
    await publisher.start(publisher.negotiator.handle_answer(answer), answer)
    for i, client in enumerate(clients[1:]):
        answer = (await offer_to_call_server(client, room_id, await subscribers.offer(i)))["sdp"]
        await subscribers.accept(i, answer)
    return clients


# -- the measurement -------------------------------------------------------------------


@dataclass
class Figures:
    server: str
    subscribers: int
    packets: int = 0
    cpu_us_per_packet: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    loss: float = 0.0
    load: str = ""
    connected: int = 0
    stamped: float = 0.0  # share of the packets seen whose send time was matched
    streams: list[int] = field(default_factory=list)  # per subscriber, the sections media arrived on
    notes: list[str] = field(default_factory=list)


async def wait_connected(endpoints: list[Endpoint], timeout: float) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    done = 0
    for endpoint in endpoints:
        with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
            await endpoint.connection.connected(max(0.1, deadline - loop.time()))
            done += 1
    return done


async def measure(server: str, pid: int, publisher: Publisher, subscribers: SubscriberPool,
                  warmup: float, seconds: float, counters: Callable[[], dict[str, float]] | None = None) -> Figures:
    """Run the publisher; over ``seconds`` after ``warmup``: server CPU per received packet, latency, loss
    (and what changed in the server's own ``counters`` over the window, as notes)."""
    figures = Figures(server, subscribers.n)
    figures.connected = await wait_connected([publisher], 20) + await subscribers.connected(20)
    stop = asyncio.Event()
    task = asyncio.ensure_future(publisher.run(stop))
    try:
        await asyncio.sleep(warmup)
        # the server's counters are read outside the latency window: rendering /metrics holds the daemon's
        # loop for a while (see the note), and Janus is not asked anything during its window
        fetched = time.monotonic()
        before = await asyncio.to_thread(counters) if counters else {}
        fetched = time.monotonic() - fetched
        first = max(publisher.sent, default=0) + 1
        mark = await subscribers.received()
        cpu = cpu_seconds(pid)
        figures.load = load_average()
        await asyncio.sleep(seconds)
        cpu = cpu_seconds(pid) - cpu
        received = await subscribers.received() - mark
        last = max(publisher.sent, default=0)
        after = await asyncio.to_thread(counters) if counters else {}
        figures.notes = [f"{k} +{v - before.get(k, 0):.0f}" for k, v in after.items()
                         if (k.endswith("_total") or "_total{" in k) and v != before.get(k, 0)]
        figures.notes += [f"{k} {before.get(k, 0):.0f}->{v:.0f}" for k, v in after.items() if k.startswith("estimate")]
        if counters:
            figures.notes.append(f"metrics fetch {fetched * 1e3:.0f} ms")
        await asyncio.sleep(1.0)  # what was in flight at the end arrives
    finally:
        stop.set()
        await task
    expected = (last + 1 - first) * subscribers.n
    arrivals, mids = await subscribers.arrivals(first, last)
    seen = sum(len(a) for a in arrivals)
    sent = publisher.sent
    delays = sorted(at - sent[counter] for each in arrivals for counter, at in each if counter in sent)
    figures.packets = received
    figures.cpu_us_per_packet = cpu / received * 1e6 if received else float("inf")
    if delays:
        figures.p50_ms = statistics.median(delays) * 1e3
        figures.p99_ms = delays[min(len(delays) - 1, int(len(delays) * 0.99))] * 1e3
    figures.loss = 1 - seen / expected if expected else 1.0
    figures.stamped = len(delays) / seen if seen else 0.0
    figures.streams = mids
    return figures


async def run_janus(port: int, pid: int, n: int, certificate: DtlsCertificate, warmup: float,
                    seconds: float, workers: int = 2) -> Figures:
    host = janus_host()
    publisher, subscribers = Publisher(certificate, host), SubscriberPool(n, workers, host)
    api = None
    try:
        await subscribers.open()
        api = await janus_room(port, publisher, subscribers)
        return await measure("janus", pid, publisher, subscribers, warmup, seconds)
    finally:
        publisher.close()
        await subscribers.close()
        if api is not None:
            await api.close()


_tags = itertools.count(1)


def sfu_counters(http_port: int) -> dict[str, float]:
    """The call server's forwarded and dropped packet counters, from its ``/metrics``."""
    from tests.sfu.live import metrics
    try:
        figures = metrics(http_port)
    except OSError:  # a saturated daemon serves /metrics late: the run goes on without them
        return {"metrics_unavailable": 1}
    out = {k: v for k, v in figures.items()
           if k.startswith(("sfu_forwarded_packets", "sfu_dropped", "sfu_received_packets", "sfu_fast_"))}
    estimates = sorted(v for k, v in figures.items() if k.startswith("sfu_subscriber_estimate_bps"))
    if estimates:  # the pacer lets each subscriber's copy out at 2.5 times its estimate
        out["estimate_kbps_min"] = estimates[0] / 1000
        out["estimate_kbps_median"] = statistics.median(estimates) / 1000
    return out


async def run_netcore(signal_port: int, http_port: int, pid: int, n: int, certificate: DtlsCertificate,
                      warmup: float, seconds: float, workers: int = 2) -> Figures:
    publisher, subscribers = Publisher(certificate), SubscriberPool(n, workers, LOCALHOST)
    clients: list = []
    try:
        await subscribers.open()
        clients = await netcore_room(signal_port, publisher, subscribers, f"{os.getpid()}_{next(_tags)}")
        return await measure("netcore-sfu", pid, publisher, subscribers, warmup, seconds,
                             lambda: sfu_counters(http_port))
    finally:
        publisher.close()
        await subscribers.close()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.ws.close()


def row(f: Figures) -> str:
    return (f"{f.server:<12} {f.subscribers:>4} {f.connected - 1:>5} {f.packets:>9} {f.cpu_us_per_packet:>10.1f} "
            f"{f.p50_ms:>8.2f} {f.p99_ms:>8.2f} {f.loss * 100:>7.2f}% {f.load:>6}")


async def bench(counts: list[int], rounds: int, warmup: float, seconds: float, workdir: str | None,
                workers: int, share: float | None = None, only: str | None = None) -> None:
    from tests.sfu.live import start_sfu, start_signal, stop
    from tests.turn.live import free_port_range
    certificate = DtlsCertificate.generate()
    with contextlib.ExitStack() as stack:
        workdir = Path(workdir or stack.enter_context(tempfile.TemporaryDirectory(prefix="sfu-janus-")))
        workdir.mkdir(parents=True, exist_ok=True)
        # one room holds the publisher and every subscriber; the room's owner sends N invites at once
        signal, signal_port = await start_signal(workdir, threshold=2, settings=(
            f"max_room_size = {max(counts) + 1}\nrate = 1000.0\nburst = 2000.0\n"
            f"max_connections_per_source = {max(counts) + 16}\n"))
        sfu = await start_sfu(workdir, signal_port)
        try:
            with janus_process(workdir, free_port_range(400)) as (janus, janus_port), \
                    cpu_share(janus.pid, share, "janus"), cpu_share(sfu["sfu"].pid, share, "sfu"):
                if share is not None:
                    print(f"each server held to {share:g} of a core ({CGROUP_PERIOD_US} us period)", flush=True)
                print(f"stream: video {VIDEO_PACKETS} x {VIDEO_SIZE} B at {FPS} frames/s, audio {AUDIO_SIZE} B "
                      f"every 20 ms: {(VIDEO_PACKETS * VIDEO_SIZE * FPS + AUDIO_SIZE * 50) * 8 / 1000:.0f} kbit/s "
                      f"of payload, {VIDEO_PACKETS * FPS + 50} packets/s", flush=True)
                print(f"{'server':<12} {'N':>4} {'conn':>5} {'packets':>9} {'CPU us/pkt':>10} "
                      f"{'p50 ms':>8} {'p99 ms':>8} {'loss':>8} {'load':>6}", flush=True)
                carried: dict[str, int] = {}  # server -> the largest N it carried on its share
                for n in counts:
                    results: dict[str, list[Figures]] = {"netcore-sfu": [], "janus": []}
                    for r in range(rounds):
                        order = ["netcore-sfu", "janus"] if r % 2 == 0 else ["janus", "netcore-sfu"]
                        for server in order:
                            if only is not None and server != only:
                                continue
                            if server == "janus":
                                f = await run_janus(janus_port, janus.pid, n, certificate, warmup, seconds, workers)
                            else:
                                f = await run_netcore(signal_port, sfu["sfu_http"], sfu["sfu"].pid, n, certificate,
                                                      warmup, seconds, workers)
                            results[server].append(f)
                            print(row(f), *(["  " + "; ".join(f.notes)] if f.notes else []), flush=True)
                            await asyncio.sleep(2.0)  # the last room's teardown settles
                    if share is not None:
                        for server, figures in results.items():
                            if figures:
                                carries, line = share_verdict(server, n, share, seconds, figures)
                                if carries:
                                    carried[server] = max(carried.get(server, 0), n)
                                print(line, flush=True)
                    if only is not None:
                        continue
                    ours = _median(results["netcore-sfu"])
                    theirs = _median(results["janus"])
                    print(f"ratio ours/janus N={n}: CPU per packet {ours[0] / theirs[0]:.2f}x, "
                          f"p50 {ours[1] / theirs[1]:.2f}x, p99 {ours[2] / theirs[2]:.2f}x, "
                          f"loss {ours[3] * 100:.2f}% / {theirs[3] * 100:.2f}%", flush=True)
                if share is not None:
                    for server in ("netcore-sfu", "janus"):
                        if only is None or server == only:
                            best = carried.get(server)
                            print(f"{server}: largest N carried at under 0.5 % loss: "
                                  + (f"{best} on {share:g} of a core, {best / share:.0f} per core" if best else
                                     f"none of {counts} on {share:g} of a core"), flush=True)
        finally:
            await stop(sfu["sfu"])
            await stop(signal)


SATURATED = 0.9  # of its share: a server this busy has no slack left and builds a queue


def share_verdict(server: str, n: int, share: float, seconds: float, figures: list[Figures]) -> tuple[bool, str]:
    """Whether ``server`` carried N subscribers on ``share`` of a core: under 0.5 % loss in every round, and
    not saturated, busy under :data:`SATURATED` of its share (a saturated server queues: its loss stays low
    for a while as its latency climbs). Saturation is read off the server's own CPU time, not off the latency,
    which the subscriber processes' own backlog also lengthens at large N."""
    loss = max(f.loss for f in figures)
    busy = max(f.cpu_us_per_packet * f.packets / 1e6 / seconds / share for f in figures)
    p99 = max(f.p99_ms for f in figures)
    carried = loss < 0.005 and busy < SATURATED
    return carried, (f"{server} N={n} on {share:g} of a core: loss {loss * 100:.2f}%, p99 {p99:.1f} ms, busy {busy:.0%} "
            f"of its share: {'carries' if carried else 'does not carry'} {n / share:.0f} subscribers per core")


def _median(figures: list[Figures]) -> tuple[float, float, float, float]:
    return (statistics.median(f.cpu_us_per_packet for f in figures), statistics.median(f.p50_ms for f in figures),
            statistics.median(f.p99_ms for f in figures), statistics.median(f.loss for f in figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("counts", nargs="*", type=int, default=[10, 50])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workdir", help="keep the servers' configuration and logs here")
    parser.add_argument("--workers", type=int, default=2, help="processes the subscribers are spread over")
    parser.add_argument("--video-kbps", type=float, default=None,
                        help="the video's rate (default about 830: three 1,150-byte packets a frame)")
    parser.add_argument("--cpu-share", type=float, default=None, metavar="Q",
                        help="hold each server to Q of one core (a cgroup; root): subscribers per core at N/Q")
    parser.add_argument("--only", choices=["netcore-sfu", "janus"], help="run one server, not both")
    parser.add_argument("--worker", metavar="HOST", help=argparse.SUPPRESS)  # one of those processes
    args = parser.parse_args()
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    if args.video_kbps is not None:
        set_video_rate(args.video_kbps)
    if args.cpu_share is not None and not 0 < args.cpu_share <= 1:
        parser.error("--cpu-share is a share of one core, in (0, 1]")
    if args.worker:
        runner(worker(args.worker))
    else:
        runner(bench(args.counts, args.rounds, args.warmup, args.seconds, args.workdir, args.workers,
                     args.cpu_share, args.only))


if __name__ == "__main__":
    main()
