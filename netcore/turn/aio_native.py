"""The compiled relay data path, wired to the asyncio endpoint.

:class:`NativeDataPath` hands the endpoint's UDP listener and relay sockets
to ``netcore.turn._datapath`` (C, one thread of its own, no GIL), mirrors the
core's channel bindings into it as routes, and serves in Python what the
thread hands back: every datagram that is not ChannelData on a route.

The routes are the ones each allocation publishes
(:attr:`~netcore.turn.allocation.Allocation.routes`: a channel bound *and* a
permission for its peer's IP), the table the core and the Python fast path
relay through too; the core says which allocations changed
(:meth:`TurnServer.poll_changed_allocations`) and :meth:`sync` re-installs
their routes, after every input the core handles. Until a route is there,
ChannelData goes through the core and is relayed the same way, only slower.

The relay thread counts packets and bytes per allocation; :meth:`harvest`
adds them to the core's ``Allocation`` counters before the core handles an
input (so an allocation that ends carries its counts into its log line), and
the residue of a deleted allocation is added to its ``AllocationDeleted``
event. The bandwidth cap is one token bucket per allocation, kept by the
thread: once an allocation is installed, its :attr:`Allocation.bucket` is an
:class:`EngineBucket` drawing on the thread's, so ChannelData relayed in C
and everything relayed through the core (Send indications, Data indications,
TCP/TLS clients, RFC 6062 data connections) share one cap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
from typing import TYPE_CHECKING

from netcore.net import Address, Receive
from netcore.turn import wire
from netcore.turn.allocation import RELAY_COUNTERS, Allocation, TokenBucket, add_relay_counts, relay_counts
from netcore.turn.server_events import AllocationDeleted

if TYPE_CHECKING:
    from netcore.turn.aio_server import TurnServerEndpoint

try:
    from netcore.turn import _datapath
except ImportError:  # built without a C compiler: the endpoint relays in Python
    _datapath = None

__all__ = ["EngineBucket", "NativeDataPath", "available"]

_BUDGET = 64  # hand-offs served per callback
_LISTENER = _datapath.LISTENER if _datapath is not None else 1
_RELAY = _datapath.RELAY if _datapath is not None else 2
_SPARE = 3  # netcore.turn._datapath's kind of a spare relay socket (see NativeDataPath.spare)


def available() -> bool:
    """True when the C extension was built."""
    return _datapath is not None


class EngineBucket:
    """An allocation's bandwidth bucket kept by the relay thread (the same methods as :class:`TokenBucket`).

    The thread's clock is CLOCK_MONOTONIC, which is the event loop's too, so
    ``now`` is not needed. Until the thread knows the allocation (or after it
    forgot it) the allocation's own bucket answers.
    """

    __slots__ = ("engine", "ident", "fallback")

    def __init__(self, engine: object, ident: int, fallback: TokenBucket) -> None:
        self.engine = engine
        self.ident = ident
        self.fallback = fallback

    def take(self, size: int, now: float, rate: float) -> bool:
        taken = self.engine.take_tokens(self.ident, size)
        return self.fallback.take(size, now, rate) if taken is None else taken

    def debit(self, size: int, now: float, rate: float) -> float:
        wait = self.engine.take_tokens(self.ident, size, True)
        return self.fallback.debit(size, now, rate) if wait is None else wait


class NativeDataPath:
    """Runs the compiled data path for one :class:`TurnServerEndpoint`."""

    def __init__(self, endpoint: TurnServerEndpoint) -> None:
        if _datapath is None:
            raise RuntimeError("netcore.turn._datapath was not built")
        self.endpoint = endpoint
        self.core = endpoint.core
        self._wakeup = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)  # written when hand-offs wait
        self.engine = _datapath.DataPath(self._wakeup, self.core.config.channel_max)
        self.core.watch_changes()
        self.sockets: dict[int, tuple[int, int, Address]] = {}  # fd -> (kind, generation, local address)
        self.routed: dict[int, Allocation] = {}  # id(allocation) -> allocation with routes installed
        self._residue: dict[tuple[Address, Address], tuple[int, int, int, int]] = {}
        self._sparing: list[int] = []  # relay sockets spared since the last sync, not yet told to the thread
        endpoint.loop.add_reader(self._wakeup, self._handoff_readable)
        self.engine.start()

    # -- sockets ----------------------------------------------------------------------

    def add_listener(self, sock: socket.socket, local: Address) -> None:
        self._add(sock, _datapath.LISTENER, local)

    def add_relay(self, sock: socket.socket, relayed: Address) -> None:
        self._add(sock, _datapath.RELAY, relayed)

    def _add(self, sock: socket.socket, kind: int, local: Address) -> None:
        fd = sock.fileno()
        if self._sparing:  # a spare taken back, or a closed one's fd reused, in the batch that spared it:
            self._retire(None)  # the thread must know of the spares first
        self.sockets[fd] = (kind, self.engine.add_socket(fd, kind), local)

    def spare(self, relayed: Address, sock: socket.socket) -> bool:
        """A relay socket between allocations (see ``SocketRelays``): the thread reads it and drops what it
        reads, so it needs no syscall to leave or rejoin the epoll set; :meth:`add_relay` takes it back
        (dropping what is still queued), :meth:`remove` before it is closed. False if it is not ours.
        ``SocketRelays.on_spare`` itself (``relayed`` is not needed here): one call less per delete.

        Python stops serving its hand-offs at once; the thread is told at the next :meth:`sync` (the flush
        after the input that ended the allocation, before its answer is sent), in the one call that also
        forgets the allocations deleted meanwhile (:meth:`_retire`)."""
        fd = sock.fileno()
        known = self.sockets.get(fd)
        if known is None or known[0] != _RELAY:
            return False
        self.sockets[fd] = (_SPARE, -1, known[2])  # no hand-off matches it (nor, later, one from before)
        self._sparing.append(fd)
        return True

    def pause(self, sock: socket.socket) -> None:
        """Stop reading ``sock`` but keep sending from it: routes through it keep relaying towards clients."""
        self.engine.pause_socket(sock.fileno())

    def remove(self, sock: socket.socket) -> None:
        """Before ``sock`` is closed: the thread stops reading it and its routes stop matching."""
        fd = sock.fileno()
        if self.sockets.pop(fd, None) is not None:
            self.engine.remove_socket(fd)

    def close(self) -> None:
        """Stop the thread; what it counted goes to the allocations first."""
        self.harvest()
        self.engine.stop()
        for fd in list(self.sockets):
            self.engine.remove_socket(fd)
        self.sockets.clear()
        self.endpoint.loop.remove_reader(self._wakeup)
        os.close(self._wakeup)

    # -- routes and counters ------------------------------------------------------------

    def sync(self) -> None:
        """Re-install the routes of every allocation the core changed."""
        core = self.core
        changed = core.poll_changed_allocations()
        if not changed:
            if self._sparing:  # a spare with no allocation deleted: an EVEN-PORT reservation that ended
                self._retire(None)
            return  # most inputs change no allocation (a Refresh, a 401, a Binding)
        allocations = core.allocations
        routed = self.routed
        set_allocation = self.engine.set_allocation
        rate = float(core.config.max_bps or 0)
        gone: dict[int, Allocation] | None = None  # deleted allocations the thread knows, by id
        for allocation in changed:
            ident = id(allocation)
            if allocations.get((allocation.listener, allocation.client)) is not allocation:
                if routed.pop(ident, None) is not None:  # else never installed: the thread does not know it
                    if gone is None:
                        gone = {}
                    gone[ident] = allocation
                continue
            set_allocation(ident, rate, self._routes(allocation))
            routed[ident] = allocation
            # Without a cap nothing draws on a bucket; a reload that sets one marks every allocation changed.
            if rate and not isinstance(allocation.bucket, EngineBucket):
                fallback = allocation.own_bucket(self.endpoint.loop.time(), rate)
                allocation.bucket = EngineBucket(self.engine, ident, fallback)
        if gone is not None or self._sparing:
            self._retire(gone)

    def _routes(self, allocation: Allocation) -> list[tuple]:
        routes = allocation.routes
        if not routes:
            return []  # every channel gone (or none with a permission): the allocation relays nothing in C
        listener = self.endpoint.listeners.get(allocation.listener)
        if listener is None or allocation.transport != wire.TRANSPORT_UDP:
            return []  # TCP/TLS clients are framed by the stream adapter
        listener_fd = listener.fileno()
        client_host, client_port = allocation.client
        if "%" in client_host:
            client_host = client_host.partition("%")[0]
        sockets = self.endpoint.relays.sockets
        out = []
        for route in routes.values():
            sock = sockets.get(route.relayed)
            if sock is not None:
                peer_host, peer_port = route.peer
                if "%" in peer_host:
                    peer_host = peer_host.partition("%")[0]
                out.append((listener_fd, client_host, client_port, route.number, sock.fileno(), peer_host, peer_port))
        return out

    def _retire(self, gone: dict[int, Allocation] | None) -> None:
        """Tell the thread, in one call, of the spares since the last sync and of the deleted allocations
        ``gone``; what they counted after the last harvest goes to the stats and to their events."""
        fds, self._sparing = self._sparing, []
        rows = self.engine.retire(fds, gone or ())
        if not rows:
            return  # the common case: nothing relayed since the last harvest
        stats = self.core.stats
        for ident, *relayed, dropped in rows:
            stats.bandwidth_dropped += dropped  # also for one that relayed nothing: all it got was over the cap
            if any(relayed):
                add_relay_counts(stats, relayed)
                allocation = gone[ident]
                self._residue[(allocation.listener, allocation.client)] = tuple(relayed)

    def harvest(self) -> None:
        """Add what the thread relayed since the last harvest to the allocations' counters."""
        routed = self.routed
        stats = self.core.stats
        for ident, *relayed, dropped in self.engine.harvest():
            allocation = routed.get(ident)
            if allocation is None:
                continue
            add_relay_counts(allocation, relayed)
            stats.bandwidth_dropped += dropped

    def complete(self, event: object) -> object:
        """An ``AllocationDeleted`` with what the thread relayed after the last harvest added."""
        if isinstance(event, AllocationDeleted) and self._residue:
            row = self._residue.pop((event.listener, event.client), None)
            if row is not None:
                event = dataclasses.replace(event, **{name: count + more for name, count, more
                                                      in zip(RELAY_COUNTERS, relay_counts(event), row)})
        return event

    def send_many(self, batch: list[tuple]) -> list[tuple[int, int]]:
        """Send each ``(fd, data, host, port, ...)``, a run on one socket in one ``sendmmsg``.

        Returns ``(index, errno)`` of those that failed, errno 0 for a host
        the compiled path does not parse (a scoped IPv6 address), not sent.
        """
        return self.engine.send_many(batch)

    def stats(self) -> dict[str, int]:
        return self.engine.stats()

    # -- what the thread hands back -----------------------------------------------------------

    def _handoff_readable(self) -> None:
        self.harvest()
        core = self.core
        now = self.endpoint.loop.time()
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._wakeup)  # before taking: a hand-off queued after this wakes us again
        sockets = self.sockets
        divert = self.endpoint.divert
        relay_to_stream = self.endpoint.relay_to_stream
        client_stun = core.handle_client_stun
        for fd, generation, kind, sender, data in self.engine.take_handoffs(_BUDGET):
            known = sockets.get(fd)
            if known is None or known[1] != generation:
                continue  # the socket went away after the thread read this
            if kind == _LISTENER:
                if divert is not None and divert(data, sender, known[2]):
                    continue
            elif relay_to_stream(data, sender, known[2], now):
                continue  # a peer's datagram for a TCP/TLS client with a channel
            try:
                if kind == _LISTENER:
                    client_stun(data, sender, known[2], now)  # a client's request (or ChannelData off a route)
                else:
                    core.handle_datagram(Receive(data, sender, known[2]), now)  # a peer's, to a relayed address
            except Exception as exc:  # one input must not end the batch nor skip the flush
                self.endpoint.faults.record(exc, sender, now)
        self.endpoint.flush()
