"""A 1-to-1 call from the command line: place one (``call``) or answer one (``answer``).

The steps are the page's (``servers/signal/web/app.js``): the caller opens
its media, invites, and offers once ``call.accepted`` arrives; the callee
accepts ``call.incoming`` and answers the offer; both trickle candidates
with ``call.candidate``. Then the call runs until ``--duration`` passes
(we hang up) or the peer hangs up (``call.ended``), with a status line
every second; a summary follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, TextIO

from netcore.peer.connection import ConnectionState, PeerConfiguration, PeerConnection
from servers.signal.client import (CallEnded, LoginFailed, ServerMessage, SignalingClient, SignalingError, ended,
                                   ice_servers)

from .media import LocalMedia, MediaChoice, Received, recorder
from .report import Meter, Status, summary_table
from .session import PeerLink, call_link

__all__ = ["CallOptions", "Failure", "Console", "place_call", "answer_call", "login"]


QUALITY_AFTER = 3.0  # seconds into the call of its first quality sample to the server
QUALITY_EVERY = 5.0  # seconds between samples after that, as the page sends them


class Failure(Exception):
    """The call could not go on; the message is the one sentence the user sees."""


@dataclass
class CallOptions:
    server: str
    user: str
    password: str
    register: bool = False
    media: MediaChoice = field(default_factory=MediaChoice)
    hosts: tuple[str, ...] = ("127.0.0.1",)
    relay_only: bool = False
    duration: float | None = None  # seconds of connected call; None: until the peer hangs up
    connect_timeout: float = 20.0
    wait: float = 60.0  # answer: how long to wait for a call
    decline: bool = False
    caller: str | None = None  # answer only calls from this user
    record: str | None = None
    summary_json: str | None = None


class Console:
    """Progress lines and the live status line on ``stream`` (rewritten in place on a terminal);
    results (the summary table) on ``out``."""

    def __init__(self, stream: TextIO = sys.stderr, out: TextIO = sys.stdout) -> None:
        self.stream = stream
        self.out = out
        self.live = stream.isatty()
        self._status_shown = False

    def progress(self, text: str) -> None:
        self._end_status()
        print(text, file=self.stream, flush=True)

    def result(self, text: str) -> None:
        self._end_status()
        print(text, file=self.out, flush=True)

    def status(self, text: str) -> None:
        if self.live:
            self.stream.write("\r\x1b[2K" + text)
            self.stream.flush()
            self._status_shown = True
        else:
            print(text, file=self.stream, flush=True)

    def _end_status(self) -> None:
        if self._status_shown:
            self.stream.write("\n")
            self._status_shown = False


async def login(options: CallOptions, console: Console) -> SignalingClient:
    console.progress(f"connecting to {options.server}")
    client = await SignalingClient.connect(options.server)
    try:
        if options.register:
            try:
                await client.register(options.user, options.password)
            except SignalingError as exc:
                if exc.code != 409:  # taken: it is ours, log in
                    raise
        await client.login(options.user, options.password)
    except LoginFailed:
        await client.close()
        raise Failure(f"cannot log in as {options.user}: wrong password, or no such user") from None
    except BaseException:
        await client.close()
        raise
    console.progress(f"logged in as {options.user}")
    return client


def peer_configuration(client: SignalingClient, options: CallOptions) -> PeerConfiguration:
    assert client.welcome is not None
    stun, turn = ice_servers(client.welcome.ice_servers)
    if options.relay_only and not turn:
        raise Failure("relay only needs a TURN server, and the signaling server offered none")
    return PeerConfiguration(hosts=options.hosts, stun_servers=stun, turn_servers=turn,
                             relay_only=options.relay_only)


@dataclass
class _Call:
    """One call in progress: its signaling, its peer connection and what is measured."""

    client: SignalingClient
    call_id: str
    peer: str
    role: str
    link: PeerLink
    media: LocalMedia
    received: Received
    console: Console
    options: CallOptions
    connected_at: float | None = None
    reason: str = ""
    meter: Meter | None = None
    quality_reported_at: float | None = None
    accepted_at: float | None = None  # when the call was accepted (loop time): connect time counts from here
    final_stats: dict[str, Any] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def _signed_in(options: CallOptions, console: Console) -> AsyncIterator[tuple[LocalMedia, SignalingClient]]:
    """The local media opened and the user logged in; both closed on the way out, the client first."""
    media = LocalMedia(options.media)
    try:
        client = await login(options, console)
        try:
            yield media, client
        finally:
            await client.close()
    finally:
        media.close()


async def place_call(options: CallOptions, peer: str, console: Console) -> dict[str, Any]:
    async with _signed_in(options, console) as (media, client):
        pc = PeerConnection(peer_configuration(client, options))
        media.add_to(pc)
        console.progress(f"calling {peer} ({' and '.join(options.media.kinds)})")
        call_id = await client.invite(peer, options.media.kinds)
        ring = float((client.welcome.limits if client.welcome else {}).get("ring_timeout", 30.0))
        await client.wait_accepted(call_id, timeout=ring + 10)
        console.progress(f"{peer} answered; connecting")
        call = _new_call(client, call_id, peer, "caller", pc, media, console, options)
        await call.link.offer()
        return await _converse(call)


async def answer_call(options: CallOptions, console: Console) -> dict[str, Any]:
    async with _signed_in(options, console) as (media, client):
        console.progress("waiting for a call" + (f" from {options.caller}" if options.caller else ""))
        match = {"from": options.caller} if options.caller else {}
        try:
            incoming = await client.wait_for("call.incoming", timeout=options.wait, **match)
        except asyncio.TimeoutError:
            raise Failure(f"no call came within {options.wait:.0f} s") from None
        call_id, peer = incoming.payload["call_id"], incoming.payload["from"]
        if options.decline:
            await client.reject(call_id, "declined")
            console.progress(f"declined the call from {peer}")
            return {"user": options.user, "role": "callee", "peer": peer, "call_id": call_id,
                    "declined": True, "connected": False}
        console.progress(f"{peer} is calling ({' and '.join(incoming.payload['media'])}); answering")
        pc = PeerConnection(peer_configuration(client, options))
        await client.accept(call_id)
        call = _new_call(client, call_id, peer, "callee", pc, media, console, options)
        return await _converse(call)


def _new_call(client: SignalingClient, call_id: str, peer: str, role: str, pc: PeerConnection,
              media: LocalMedia, console: Console, options: CallOptions) -> _Call:
    received = Received(recorder=recorder(options.record, options.media))
    pc.on("track", received.attach)

    def on_error(exc: Exception) -> None:
        console.progress(f"signaling: {exc}")
    link = call_link(client, call_id, pc, on_error=on_error)
    return _Call(client, call_id, peer, role, link, media, received, console, options)


async def _converse(call: _Call) -> dict[str, Any]:
    """Run the call until its duration, the peer's hang-up or a failure; the summary."""
    loop = asyncio.get_running_loop()
    started = call.accepted_at = loop.time()
    stop = asyncio.Event()
    _on_signals(loop, stop)
    next_status = started + 1.0
    try:
        while not stop.is_set():
            now = loop.time()
            try:
                message = await call.client.receive(timeout=max(0.0, min(next_status, now + 0.2) - now))
            except asyncio.TimeoutError:
                message = None
            if message is not None and await _handle(call, message):
                break
            now = loop.time()
            _check_connection(call, now, started)
            if call.connected_at is not None and call.options.duration is not None \
                    and now - call.connected_at >= call.options.duration:
                call.reason = "hangup (duration reached)"
                await _show_status(call, now, final=True)
                await _hang_up(call)
                break
            if now >= next_status:
                next_status += 1.0
                await _show_status(call, now)
        else:
            call.reason = "hangup (interrupted)"
            await _hang_up(call)
    finally:
        _off_signals(loop)
        call.final_stats = call.link.pc.get_stats()
        elapsed = loop.time() - (call.connected_at or started)
        await call.link.close()
        if call.received.recorder is not None:
            call.received.recorder.close()
    return _finish(call, elapsed)


async def _handle(call: _Call, message: ServerMessage) -> bool:
    """Act on one pushed message; True when the call is over."""
    p = message.payload
    if p.get("call_id") != call.call_id:
        return False
    if message.type == "call.offer" and not call.link.pc.transceivers:
        call.media.add_for_offer(call.link.pc, p["sdp"])
    if message.type in ("call.offer", "call.answer"):
        await call.link.handle_description(message.type.split(".")[1], p["sdp"])
    elif message.type == "call.candidate":
        await call.link.handle_candidate(p.get("candidate") or {})
    elif message.type == "call.ended":
        if call.connected_at is None:
            raise _ended_sentence(call.peer, ended(p))
        call.reason = f"{call.peer} hung up" if p.get("reason") == "hangup" else str(p.get("reason"))
        call.console.progress(f"{call.peer} ended the call ({p.get('reason')})")
        return True
    return False


def _check_connection(call: _Call, now: float, started: float) -> None:
    pc = call.link.pc
    if call.connected_at is None and pc.connection_state is ConnectionState.CONNECTED:
        call.connected_at = now
        call.meter = Meter(now)
        path = call.link.path(pc.get_stats()) or "?"
        call.console.progress(f"connected to {call.peer} in {now - started:.2f} s over a {path} path")
    elif pc.connection_state is ConnectionState.FAILED or (
            call.connected_at is None and now - started > call.options.connect_timeout):
        hint = " (relay only: is the TURN server reachable?)" if call.options.relay_only else ""
        raise Failure(f"no media path to {call.peer} could be established{hint}")


def _paths(call: _Call, stats: dict[str, dict[str, Any]]) -> dict[str, str | None]:
    """Per direction: the latest path-change event of each (when the peer connection keeps them),
    else the selected pair for both."""
    pair = call.link.path(stats)
    paths: dict[str, str | None] = {"send": pair, "receive": pair}
    for direction, event in getattr(call.link.pc, "paths", {}).items():
        paths[direction] = "relay" if event.relayed else "direct"
    return paths


async def _show_status(call: _Call, now: float, final: bool = False) -> None:
    """The live status line, and a quality sample for the analytics when one is due; ``final``:
    the caller is about to hang up, so the call's last seconds get a sample of their own."""
    if call.meter is None:
        return
    stats = call.link.pc.get_stats()
    status = call.meter.sample(stats, now, _paths(call, stats))
    call.console.status(status.line())
    if status.rtt_ms is None or now - call.meter.start < QUALITY_AFTER:
        return
    since = None if call.quality_reported_at is None else now - call.quality_reported_at
    if since is None or since >= QUALITY_EVERY or (final and since >= 1.0):
        await _report_quality(call, status, now)


async def _report_quality(call: _Call, status: Status, now: float) -> None:
    """Periodic samples, as the page sends them: path, RTT, loss and bitrate for the analytics."""
    connect_ms = None
    if call.quality_reported_at is None and call.connected_at is not None and call.accepted_at is not None:
        connect_ms = 1000 * max(0.0, call.connected_at - call.accepted_at)  # the first sample, as the page
    call.quality_reported_at = now
    relayed = "relay" in (status.send_path, status.receive_path)
    try:
        await call.client.report_quality(call.call_id, "relay" if relayed else "direct", status.rtt_ms,
                                         status.loss_in, bitrate_kbps=status.in_kbps, connect_ms=connect_ms)
    except SignalingError:
        pass


async def _hang_up(call: _Call) -> None:
    try:
        await call.client.hangup(call.call_id)
    except SignalingError:
        pass  # already over on the server's side


def _finish(call: _Call, elapsed: float) -> dict[str, Any]:
    meter = call.meter or Meter(0.0)
    meter.sample(call.final_stats, meter.start + elapsed, _paths(call, call.final_stats))
    totals = meter.last
    call.console.result(summary_table(f"call with {call.peer}: {elapsed:.1f} s, {call.reason}", elapsed, totals))
    return {
        "user": call.options.user, "role": call.role, "peer": call.peer, "call_id": call.call_id,
        "connected": call.connected_at is not None, "seconds": round(elapsed, 3), "ended": call.reason,
        "paths": totals.paths, "received": call.received.summary(),
        "sent": {"video_frames": totals.video_frames_sent, "audio_frames": totals.audio_frames_sent,
                 "bytes": totals.bytes_sent},
        "rtt_ms": totals.rtt_ms, "packets_lost": totals.packets_lost,
        "packets_received": totals.packets_received,
    }


def _ended_sentence(peer: str, exc: CallEnded) -> Failure:
    return Failure(ended_sentence(peer, exc.reason))


def ended_sentence(peer: str, reason: str) -> str:
    return {
        "declined": f"{peer} declined the call",
        "busy": f"{peer} is busy",
        "timeout": f"{peer} did not answer",
        "cancelled": f"{peer} cancelled the call",
        "hangup": f"{peer} hung up before the call connected",
        "unavailable": f"{peer} went away before answering",
        "answered_elsewhere": "the call was answered on another device",
        "disconnected": f"{peer} lost the connection",
    }.get(reason, f"the call ended ({reason})")


def _on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass


def _off_signals(loop: asyncio.AbstractEventLoop) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.remove_signal_handler(sig)
        except (NotImplementedError, RuntimeError):
            pass


def write_summary(path: str | None, summary: dict[str, Any]) -> None:
    if path:
        with open(path, "w") as fh:
            json.dump(summary, fh, indent=1)
