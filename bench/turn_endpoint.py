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
Usage: ``python bench/turn_endpoint.py [--clients N] [--rounds N]``.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from netcore.stun import attributes as sa  # noqa: E402
from netcore.stun.credentials import long_term_key  # noqa: E402
from netcore.stun.message import Message, MessageClass  # noqa: E402
from netcore.turn import wire  # noqa: E402
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


async def phase(core: TurnServer, socks: list[socket.socket], datagrams: list[bytes]) -> tuple[float, list[bytes]]:
    """Thread CPU microseconds per request until the core handled them all; the answers."""
    target = core.stats.requests + len(datagrams)
    for sock, data in zip(socks, datagrams):
        sock.send(data)
    began = time.thread_time()
    while core.stats.requests < target:
        await asyncio.sleep(0.002)
    spent = (time.thread_time() - began) / len(datagrams) * 1e6
    answers = []
    for sock in socks:
        while True:
            try:
                answers.append(sock.recv(2048))
            except BlockingIOError:
                break
    return spent, answers


async def run(count: int, rounds: int) -> dict[str, list[float]]:
    low, high = free_port_range(count + 10)
    relays = SocketRelays({1: "127.0.0.1"}, low, high)
    core = TurnServer(ServerConfig(realm=REALM, users={USER: PASSWORD}, allow_loopback_peers=True,
                                   user_quota=count, total_quota=count, unauthorized_burst=count,
                                   unauthorized_rate=count), relays)
    endpoint = TurnServerEndpoint(core, relays, lambda event: None, native=True)
    server = endpoint.add_listener(open_udp_socket("127.0.0.1", 0))
    key = long_term_key(USER, REALM, PASSWORD, sa.ALGORITHM_MD5)
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)  # as servers/turn/main.py
    figures: dict[str, list[float]] = {}
    try:
        for _ in range(rounds):
            socks = clients(count, server)
            spent, answers = await phase(core, socks, [request(wire.ALLOCATE, ALLOCATE, None, key) for _ in socks])
            figures.setdefault("401", []).append(spent)
            nonces = [Message.parse(a).get(sa.NONCE) for a in answers]
            for name, method, attributes in PHASES:
                spent, answers = await phase(core, socks, [request(method, attributes, n, key) for n in nonces])
                figures.setdefault(name, []).append(spent)
                assert len(answers) == count and {Message.parse(a).message_class for a in answers} \
                    == {MessageClass.SUCCESS}, name
            for sock in socks:
                sock.close()
    finally:
        endpoint.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    figures = asyncio.run(run(args.clients, args.rounds))
    print(f"TURN endpoint, event loop thread CPU microseconds per request (median of {args.rounds} rounds of "
          f"{args.clients} clients; load {os.getloadavg()[0]:.1f})")
    for name, values in figures.items():
        print(f"{name:8} {statistics.median(values):8.2f}")


if __name__ == "__main__":
    main()
