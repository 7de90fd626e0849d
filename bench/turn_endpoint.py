"""The TURN endpoint's cost per set-up request in one process: the core plus the adapter, without the fleet.

``bench/turn_scale.py`` measures the daemon beside coturn with a fleet of
Python clients in another process, on a machine other work shares: its
figures move by a third from run to run. ``bench/turn_core.py`` measures the
sans-IO core alone. This one sits between them: the asyncio endpoint
(``TurnServerEndpoint`` with the compiled data path, the daemon's garbage
collector settings) in this process, ``--clients`` UDP sockets that each
send one request of a phase (built beforehand, as ``turn_core.py`` builds
them) before the loop runs, and the event loop's thread CPU until the core
has handled them all, divided by their number. It counts the hand-off from
the relay thread, the core, the answers' ``sendmmsg`` (the kernel delivers
each on loopback in the sender's context) and the route installs, not the
relay thread's own reading. Phases: 401, Allocate, ChannelBind, Refresh,
delete (Refresh 0); each round a fresh set of clients, so from the second
round on allocations find spare relay sockets. Medians over ``--rounds``.
``--phases`` runs a prefix or a variant of them (``alloc,bind,refresh,refresh``; empty: the 401s only):
under callgrind, the instructions of two runs that differ by one phase are
that phase's (the loop waits on the hand-offs, it does not poll a timer).
``--inline`` hands the requests to the adapter as the relay thread's hand-offs
would (``handle_client_stun`` per datagram, ``flush`` per batch of 64) without
sending them: no relay thread in the figures, and instruction counts that do
not depend on how the threads interleaved (the answers still go out by socket).
``--no-close`` ends the process without closing the endpoint, whose shutdown
deletes what is left: otherwise a run without the delete phase pays for the
same teardowns at its end, and the difference of two runs hides them.
Usage: ``python bench/turn_endpoint.py [--clients N] [--rounds N] [--phases P,...] [--inline] [--no-close]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from netcore.stun import attributes as sa  # noqa: E402
from netcore.stun.credentials import long_term_key  # noqa: E402
from netcore.stun.message import Message, MessageClass  # noqa: E402
from netcore.turn import wire  # noqa: E402
from netcore.turn.aio_native import _BUDGET  # noqa: E402
from netcore.turn.aio_server import SocketRelays, TurnServerEndpoint, open_udp_socket  # noqa: E402
from netcore.turn.server import ServerConfig, TurnServer  # noqa: E402
from tests.turn.live import free_port_range  # noqa: E402
from turn_core import PASSWORD, REALM, USER, request  # noqa: E402

PEER = ("127.0.0.1", 9)
ALLOCATE = [(wire.REQUESTED_TRANSPORT, wire.TRANSPORT_UDP), (wire.LIFETIME, 600)]
PHASES = [
    ("alloc", wire.ALLOCATE, ALLOCATE),
    ("bind", wire.CHANNEL_BIND, [(wire.CHANNEL_NUMBER, 0x4000), (wire.XOR_PEER_ADDRESS, PEER)]),
    ("refresh", wire.REFRESH, [(wire.LIFETIME, 600)]),
    ("delete", wire.REFRESH, [(wire.LIFETIME, 0)]),
]


def clients(count: int, server: tuple) -> list[socket.socket]:
    out = []
    for index in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((f"127.0.{index // 250 + 20}.{index % 250 + 1}", 0))
        sock.connect(server)
        sock.setblocking(False)
        out.append(sock)
    return out


def wake_when_handled(endpoint: TurnServerEndpoint) -> Callable[[int], asyncio.Future]:
    """``until(target)``: a future done once the core has handled ``target`` requests, checked after each
    batch of hand-offs (a polling timer would add its own wake-ups to the figures, more the slower the run)."""
    native = endpoint.native
    core = endpoint.core
    waiting: list[tuple[int, asyncio.Future]] = []

    def readable() -> None:
        native._handoff_readable()
        if waiting and core.stats.requests >= waiting[0][0]:
            waiting.pop()[1].set_result(None)

    endpoint.loop.remove_reader(native._wakeup)
    endpoint.loop.add_reader(native._wakeup, readable)

    def until(target: int) -> asyncio.Future:
        future = endpoint.loop.create_future()
        waiting.append((target, future))
        return future

    return until


def handed_off(endpoint: TurnServerEndpoint, server: tuple, socks: list[socket.socket],
               datagrams: list[bytes]) -> None:
    """What ``NativeDataPath._handoff_readable`` does with these datagrams, in batches of its budget."""
    native = endpoint.native
    handle = endpoint.core.handle_client_stun
    senders = [sock.getsockname() for sock in socks]
    for start in range(0, len(datagrams), _BUDGET):
        native.harvest()
        now = endpoint.loop.time()
        for index in range(start, min(start + _BUDGET, len(datagrams))):
            handle(datagrams[index], senders[index], server, now)
        endpoint.flush()


async def phase(endpoint: TurnServerEndpoint, until: Callable[[int], asyncio.Future] | None, server: tuple,
                socks: list[socket.socket], datagrams: list[bytes]) -> tuple[float, list[bytes]]:
    """Thread CPU microseconds per request until the core handled them all; the answers."""
    core = endpoint.core
    if until is None:
        began = time.thread_time()
        handed_off(endpoint, server, socks, datagrams)
        spent = (time.thread_time() - began) / len(datagrams) * 1e6
        await asyncio.sleep(0.05)  # the answers are on loopback already; let the sockets settle
        return spent, receive_all(socks)
    target = core.stats.requests + len(datagrams)
    done = until(target)
    for sock, data in zip(socks, datagrams):
        sock.send(data)
    began = time.thread_time()
    await done
    spent = (time.thread_time() - began) / len(datagrams) * 1e6
    return spent, receive_all(socks)


def receive_all(socks: list[socket.socket]) -> list[bytes]:
    answers = []
    for sock in socks:
        while True:
            try:
                answers.append(sock.recv(2048))
            except BlockingIOError:
                break
    return answers


async def run(count: int, rounds: int, phases: list[str], inline: bool = False,
              close: bool = True) -> dict[str, list[float]]:
    low, high = free_port_range(count + 10)
    relays = SocketRelays({1: "127.0.0.1"}, low, high)
    core = TurnServer(ServerConfig(realm=REALM, users={USER: PASSWORD}, allow_loopback_peers=True,
                                   user_quota=count, total_quota=count, unauthorized_burst=count,
                                   unauthorized_rate=count), relays)
    endpoint = TurnServerEndpoint(core, relays, lambda event: None, native=True)
    server = endpoint.add_listener(open_udp_socket("127.0.0.1", 0))
    until = None if inline else wake_when_handled(endpoint)
    chosen = [next(p for p in PHASES if p[0] == name) for name in phases]
    key = long_term_key(USER, REALM, PASSWORD, sa.ALGORITHM_MD5)
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)  # as servers/turn/main.py
    figures: dict[str, list[float]] = {}
    try:
        for _ in range(rounds):
            socks = clients(count, server)
            spent, answers = await phase(endpoint, until, server, socks,
                                         [request(wire.ALLOCATE, ALLOCATE, None, key) for _ in socks])
            figures.setdefault("401", []).append(spent)
            nonces = [Message.parse(a).get(sa.NONCE) for a in answers]
            for name, method, attributes in chosen:
                spent, answers = await phase(endpoint, until, server, socks,
                                             [request(method, attributes, n, key) for n in nonces])
                figures.setdefault(name, []).append(spent)
                assert len(answers) == count and {Message.parse(a).message_class for a in answers} \
                    == {MessageClass.SUCCESS}, name
            for sock in socks:
                sock.close()
    finally:
        if close:
            endpoint.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--phases", default=",".join(p[0] for p in PHASES),
                        help="comma-separated, in order, each of " + ", ".join(p[0] for p in PHASES))
    parser.add_argument("--inline", action="store_true", help="hand the requests to the adapter in this thread")
    parser.add_argument("--no-close", action="store_true", help="exit without the endpoint's shutdown")
    args = parser.parse_args()
    figures = asyncio.run(run(args.clients, args.rounds, [p for p in args.phases.split(",") if p], args.inline, not args.no_close))
    print(f"TURN endpoint, event loop thread CPU microseconds per request (median of {args.rounds} rounds of "
          f"{args.clients} clients; load {os.getloadavg()[0]:.1f})")
    for name, values in figures.items():
        print(f"{name:8} {statistics.median(values):8.2f}")
    if args.no_close:
        sys.stdout.flush()
        os._exit(0)  # the relay thread and the sockets go with the process


if __name__ == "__main__":
    main()
