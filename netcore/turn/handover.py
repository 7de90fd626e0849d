"""Graceful upgrade: a new daemon takes the listening sockets while the old one drains.

The old daemon (started with ``--handover PATH``) listens on a Unix
SOCK_SEQPACKET socket at PATH. A new daemon started with the same option
finds it there and asks for the listeners:

1. new -> old: ``take``.
2. old -> new: its UDP and TCP/TLS listening sockets (SCM_RIGHTS) with their
   addresses, then the 5-tuples of its allocations (``+`` messages). The old
   daemon stops reading the UDP listeners (it keeps them to send from: its
   relay sockets and its TCP/TLS connections stay its own) and stops
   accepting connections, unlinks PATH and only drains from then on.
3. The new daemon reads the listeners. A datagram from a client of the old
   daemon (the old allocations' 5-tuples) is forwarded to it over the
   connection (``D`` messages) and the old core handles it as if it had read
   it; everything else is the new daemon's. The old daemon tells which
   5-tuples it no longer serves (``-``) and which it took on (``+``, e.g. a
   client that allocated again before the new daemon learned of the
   deletion).
4. When its last allocation has ended, the old daemon closes the connection
   and exits; the new one now listens on PATH for its own successor.

Both sides are asyncio adapters around :class:`TurnServerEndpoint`; the
sans-IO core knows nothing of this. Limits: one worker per daemon (the
``--workers`` supervisor is not handed over); RFC 6062 relay ports are
listening TCP sockets with SO_REUSEPORT, so a new daemon's relay port may
share a port with an old one's (its peers' connections may then land in
either); the old daemon's client-to-peer ChannelData goes through its core
(Python) after the handover, peer-to-client stays on its data path.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from typing import TYPE_CHECKING, Callable

from netcore.net import Address
from netcore.turn.server_events import AllocationDeleted, AllocationGranted

if TYPE_CHECKING:
    from netcore.turn.aio_server import TurnServerEndpoint

__all__ = ["Predecessor", "Successor"]

log = logging.getLogger("netcore.turn")

_MAX_FDS = 64
_CHUNK = 200  # 5-tuples per + / - message
_BUFFER = 4 << 20
_FORWARD = struct.Struct("!BH")  # listener index, client port; then the client host (text), NUL, the datagram


def _seqpacket() -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, _BUFFER)
    return sock


def _key(listener: Address, client: Address) -> list:
    return [list(listener), list(client)]


def _tuple(item: list) -> tuple[Address, Address]:
    return tuple(item[0]), tuple(item[1])  # type: ignore[return-value]


class Successor:
    """The old daemon's side: waits at ``path`` for a new daemon, hands over and drains.

    ``on_drained`` is called once the handover happened and the last
    allocation has ended (the daemon then exits).
    """

    def __init__(self, path: str, endpoint: TurnServerEndpoint, on_drained: Callable[[], None]) -> None:
        self.path = path
        self.endpoint = endpoint
        self.on_drained = on_drained
        self.loop = endpoint.loop
        self.handed_over = False
        self.drained = False
        self.forwarded = 0
        self._link: socket.socket | None = None
        self._server = _seqpacket()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._server.bind(path)
        self._server.listen(1)
        self._server.setblocking(False)
        self.loop.add_reader(self._server.fileno(), self._accept)

    def close(self) -> None:
        if self._server.fileno() >= 0:
            self.loop.remove_reader(self._server.fileno())
            self._server.close()
            if not self.handed_over:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
        if self._link is not None:
            self.loop.remove_reader(self._link.fileno())
            self._link.close()
            self._link = None

    def _accept(self) -> None:
        try:
            link, _ = self._server.accept()
        except (BlockingIOError, InterruptedError):
            return
        link.settimeout(5.0)
        try:
            if link.recv(64) != b"take":
                link.close()
                return
            self._hand_over(link)
        except OSError as exc:
            log.warning("handover failed, still serving: %s", exc)
            link.close()
            return
        link.setblocking(False)
        self._link = link
        self.loop.remove_reader(self._server.fileno())
        self._server.close()  # the path now belongs to the successor
        self.loop.add_reader(link.fileno(), self._readable)
        self.handed_over = True
        log.info("handed the listeners over; draining allocations=%d", len(self.endpoint.core.allocations))
        self._check_drained()

    def _hand_over(self, link: socket.socket) -> None:
        endpoint = self.endpoint
        udp = list(endpoint.listeners.items())
        streams = [(server_key, server.sockets[0]) for server_key, server in endpoint.stream_server_keys()]
        if len(udp) + len(streams) > _MAX_FDS:
            raise OSError("too many listeners to hand over")
        header = json.dumps({"udp": [list(a) for a, _ in udp], "stream": [list(k) for k, _ in streams]}).encode()
        fds = array.array("i", [s.fileno() for _, s in udp] + [s.fileno() for _, s in streams])
        link.sendmsg([header], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        keys = [_key(listener, client) for listener, client in endpoint.core.allocations]
        for start in range(0, len(keys), _CHUNK):
            link.sendall(b"+" + json.dumps(keys[start:start + _CHUNK]).encode())
        link.send(b"ready")
        endpoint.stop_listening()

    def observe(self, event: object) -> None:
        """Every event of the core: 5-tuples taken on or given up are told to the successor."""
        if self._link is None:
            return
        if isinstance(event, AllocationGranted):
            self._send(b"+" + json.dumps([_key(event.listener, event.client)]).encode())
        elif isinstance(event, AllocationDeleted):
            self._send(b"-" + json.dumps([_key(event.listener, event.client)]).encode())
            self.loop.call_soon(self._check_drained)

    def _send(self, message: bytes) -> None:
        try:
            assert self._link is not None
            self._link.send(message)
        except OSError as exc:
            log.warning("handover link: %s", exc)

    def _readable(self) -> None:
        endpoint = self.endpoint
        listeners = list(endpoint.listeners)
        link = self._link
        if link is None:
            return
        for _ in range(256):
            try:
                message = link.recv(70000)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                message = b""
            if not message:  # the successor went away: nobody reads the listeners for us any more
                log.warning("the successor closed the handover link; ending")
                self.loop.remove_reader(link.fileno())
                self.on_drained()
                return
            if message[:1] != b"D":
                continue
            index, port = _FORWARD.unpack_from(message, 1)
            end = message.index(b"\0", 1 + _FORWARD.size)
            host = message[1 + _FORWARD.size:end].decode()
            if index < len(listeners):
                self.forwarded += 1
                endpoint.receive_forwarded(message[end + 1:], (host, port), listeners[index])
        endpoint.flush()

    def _check_drained(self) -> None:
        if self.handed_over and not self.drained and not self.endpoint.core.allocations:
            self.drained = True
            log.info("drained: every allocation has ended (forwarded=%d)", self.forwarded)
            self.on_drained()


class Predecessor:
    """The new daemon's side: takes the old daemon's listeners and forwards its clients' datagrams."""

    def __init__(self, link: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.link = link
        self.loop = loop
        self.owned: set[tuple[Address, Address]] = set()  # (listener, client) the old daemon still serves
        self.listener_index: dict[Address, int] = {}
        self.udp: list[tuple[Address, socket.socket]] = []
        self.streams: list[tuple[tuple, socket.socket]] = []
        self.forwarded = 0
        self.lost = 0

    @classmethod
    def connect(cls, path: str, loop: asyncio.AbstractEventLoop) -> Predecessor | None:
        """The daemon serving at ``path`` with its listeners taken, or None when nobody is there."""
        link = _seqpacket()
        link.settimeout(10.0)
        try:
            link.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            link.close()
            return None
        self = cls(link, loop)
        link.send(b"take")
        fds = array.array("i")
        message, ancillary, _, _ = link.recvmsg(65536, socket.CMSG_SPACE(_MAX_FDS * fds.itemsize))
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        header = json.loads(message)
        numbers = list(fds)
        for index, address in enumerate(header["udp"]):
            sock = socket.socket(fileno=numbers.pop(0))
            sock.setblocking(False)
            self.udp.append((tuple(address), sock))
            self.listener_index[tuple(address)] = index
        for key in header["stream"]:
            sock = socket.socket(fileno=numbers.pop(0))
            sock.setblocking(False)
            self.streams.append((tuple(key), sock))
        while (message := link.recv(70000)) != b"ready":
            if not message:
                raise ConnectionError("the old daemon closed the handover link")
            self._update(message)
        link.setblocking(False)
        loop.add_reader(link.fileno(), self._readable)
        return self

    def take_udp(self, address: Address) -> socket.socket | None:
        return next((s for a, s in self.udp if a == address), None)

    def take_stream(self, address: Address, kind: str) -> socket.socket | None:
        return next((s for k, s in self.streams if k[:2] == tuple(address) and k[2] == kind), None)

    def _update(self, message: bytes) -> None:
        keys = {_tuple(item) for item in json.loads(message[1:])}
        if message[:1] == b"+":
            self.owned |= keys
        elif message[:1] == b"-":
            self.owned -= keys

    def _readable(self) -> None:
        while True:
            try:
                message = self.link.recv(70000)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                message = b""
            if not message:
                log.info("the old daemon has drained (forwarded=%d)", self.forwarded)
                self.close()
                return
            self._update(message)

    def divert(self, data: bytes, client: Address, listener: Address) -> bool:
        """Forward a datagram of the old daemon's clients to it; False for one that is ours."""
        if (listener, client) not in self.owned:
            return False
        header = b"D" + _FORWARD.pack(self.listener_index.get(listener, 255), client[1]) + client[0].encode() + b"\0"
        try:
            self.link.send(header + data)
            self.forwarded += 1
        except OSError:
            self.lost += 1
        return True

    def close(self) -> None:
        self.owned.clear()
        if self.link.fileno() >= 0:
            self.loop.remove_reader(self.link.fileno())
            self.link.close()
