"""The TURN server core's cost per request, sans-IO: each set-up request kind, N clients at once.

What ``bench/turn_scale.py`` measures in the daemon (CPU per request per
set-up phase) minus the sockets, the hand-off from the relay thread and the
event loop: only :meth:`TurnServer.handle_datagram` and draining what it
queued, for N clients each sending the request of the phase, as a TURN
client sends it (the attributes of ``netcore.turn.client``, MESSAGE-INTEGRITY
with the MD5 long-term key, FINGERPRINT). Phases: the unauthenticated
Allocate answered 401, the signed Allocate, ChannelBind, CreatePermission,
Refresh and Refresh with LIFETIME 0 (delete). Printed: CPU microseconds per
request (the thread's CPU time), the median over ``--rounds``, with the STUN
codec's byte work compiled and in Python (:mod:`netcore.stun.compiled`),
rounds alternating, and the ratio compiled/Python.
``--memory`` instead counts what an allocation is made of (tracemalloc, the
STUN codec compiled): the blocks (Python objects, and dict tables) and bytes
the Allocates and ChannelBinds of ``--clients`` clients leave, per allocation,
within the Allocate answers' 40 s retransmission window and after it, and
what the deletes then free.
Usage: ``python bench/turn_core.py [--clients N] [--rounds N] [--memory]``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netcore.net import Receive  # noqa: E402
from netcore.stun import attributes as sa  # noqa: E402
from netcore.stun import compiled  # noqa: E402
from netcore.stun.credentials import long_term_key  # noqa: E402
from netcore.stun.message import Message, MessageClass  # noqa: E402
from netcore.turn import wire  # noqa: E402
from netcore.turn.server import ServerConfig, TurnServer  # noqa: E402

USER, PASSWORD, REALM = "bench", "bench", "bench.example"
LISTENER = ("192.0.2.1", 3478)
PEER = ("203.0.113.5", 5000)


class Relays:
    """Relayed addresses handed out in order, no sockets (a port scan would distort the figures)."""

    families = frozenset({wire.FAMILY_IPV4})

    def __init__(self) -> None:
        self.next = 0

    def open_relay(self, family, *, transport=17, even_port=False, dont_fragment=False, port=None):
        self.next += 1
        return ("192.0.2.1", 10000 + self.next)

    def close_relay(self, relayed) -> None:
        pass


def request(method: int, attributes: list, nonce: str | None, key: bytes) -> bytes:
    message = Message(method, MessageClass.REQUEST)
    for attr_type, value in attributes:
        message.add(attr_type, value)
    if nonce is None:
        return message.encode(fingerprint=True)
    message.add(sa.USERNAME, USER).add(sa.REALM, REALM).add(sa.NONCE, nonce)
    return message.encode(key, fingerprint=True)


def run_phase(server: TurnServer, clients: list, datagrams: list[bytes], now: float) -> tuple[float, list]:
    answers = []
    began = time.thread_time()
    for addr, data in zip(clients, datagrams):
        server.handle_datagram(Receive(data, addr, LISTENER), now)
        while (item := server.poll_transmit()) is not None:
            answers.append(item.data)
        while server.poll_event() is not None:
            pass
    return (time.thread_time() - began) / len(datagrams) * 1e6, answers


def one_round(count: int) -> dict[str, float]:
    server = TurnServer(ServerConfig(realm=REALM, users={USER: PASSWORD}, user_quota=count, total_quota=count,
                                     unauthorized_burst=count), Relays())
    key = long_term_key(USER, REALM, PASSWORD, sa.ALGORITHM_MD5)
    clients = [(f"198.51.{i // 250}.{i % 250 + 1}", 40000 + i) for i in range(count)]
    allocate = [(wire.REQUESTED_TRANSPORT, wire.TRANSPORT_UDP), (wire.LIFETIME, 600)]
    now = 100.0
    times = {}
    times["401"], answers = run_phase(server, clients, [request(wire.ALLOCATE, allocate, None, key)
                                                        for _ in clients], now)
    nonces = [Message.parse(a).get(sa.NONCE) for a in answers]
    phases = [
        ("alloc", wire.ALLOCATE, allocate),
        ("bind", wire.CHANNEL_BIND, [(wire.CHANNEL_NUMBER, 0x4000), (wire.XOR_PEER_ADDRESS, PEER)]),
        ("perm", wire.CREATE_PERMISSION, [(wire.XOR_PEER_ADDRESS, PEER)]),
        ("refresh", wire.REFRESH, [(wire.LIFETIME, 600)]),
        ("delete", wire.REFRESH, [(wire.LIFETIME, 0)]),
    ]
    for name, method, attributes in phases:
        datagrams = [request(method, attributes, nonce, key) for nonce in nonces]
        times[name], answers = run_phase(server, clients, datagrams, now)
        codes = {Message.parse(a).message_class for a in answers}
        assert codes == {MessageClass.SUCCESS}, (name, codes)
    return times


def memory(count: int) -> None:
    """Print the tracemalloc blocks and bytes per allocation (see the module's docstring)."""
    server = TurnServer(ServerConfig(realm=REALM, users={USER: PASSWORD}, user_quota=count, total_quota=count,
                                     unauthorized_burst=count), Relays())
    key = long_term_key(USER, REALM, PASSWORD, sa.ALGORITHM_MD5)
    clients = [(f"198.51.{i // 250}.{i % 250 + 1}", 40000 + i) for i in range(count)]
    allocate = [(wire.REQUESTED_TRANSPORT, wire.TRANSPORT_UDP), (wire.LIFETIME, 600)]
    _, answers = run_phase(server, clients, [request(wire.ALLOCATE, allocate, None, key) for _ in clients], 100.0)
    nonces = [Message.parse(a).get(sa.NONCE) for a in answers]
    bind = [(wire.CHANNEL_NUMBER, 0x4000), (wire.XOR_PEER_ADDRESS, PEER)]
    phases = [[request(method, attributes, nonce, key) for nonce in nonces]
              for method, attributes in ((wire.ALLOCATE, allocate), (wire.CHANNEL_BIND, bind),
                                         (wire.REFRESH, [(wire.LIFETIME, 0)]))]

    def held() -> tuple[int, int]:
        gc.collect()
        traced = tracemalloc.take_snapshot().statistics("filename")
        return sum(s.count for s in traced), sum(s.size for s in traced)

    tracemalloc.start()
    before = held()
    run_phase(server, clients, phases[0], 100.0)
    run_phase(server, clients, phases[1], 100.0)
    made = held()
    server.handle_timeout(141.0)  # past the Allocate answers' retransmission window
    aged = held()
    run_phase(server, clients, phases[2], 141.0)
    deleted = held()
    tracemalloc.stop()
    print(f"TURN core, per allocation with one channel ({count} of them): tracemalloc blocks, bytes")
    for name, (blocks, size) in (("made", made), ("after 40 s", aged)):
        print(f"{name:12} {(blocks - before[0]) / count:6.1f} {(size - before[1]) / count:7.0f}")
    print(f"{'delete frees':12} {(aged[0] - deleted[0]) / count:6.1f} {(aged[1] - deleted[1]) / count:7.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--memory", action="store_true", help="count an allocation's objects instead")
    args = parser.parse_args()
    if args.memory:
        memory(args.clients)
        return
    codecs = ["compiled", "python"] if compiled.available() else ["python"]
    rounds: dict[str, list[dict[str, float]]] = {codec: [] for codec in codecs}
    for _ in range(args.rounds):
        for codec in codecs:
            compiled.use(codec == "compiled")
            rounds[codec].append(one_round(args.clients))
    print(f"TURN core, CPU microseconds per request (median of {args.rounds} rounds of {args.clients} clients)")
    print(f"{'phase':8} " + " ".join(f"{codec:>9}" for codec in codecs) + ("    ratio" if len(codecs) > 1 else ""))
    for name in rounds[codecs[0]][0]:
        medians = []
        for codec in codecs:
            values = sorted(r[name] for r in rounds[codec])
            medians.append(values[len(values) // 2])
        ratio = f"{medians[0] / medians[1]:9.2f}" if len(medians) > 1 else ""
        print(f"{name:8} " + " ".join(f"{m:9.2f}" for m in medians) + ratio)


if __name__ == "__main__":
    main()
