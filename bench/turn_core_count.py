"""The TURN core's set-up phases for an instruction count (callgrind): no threads, no sockets, no clock.

``bench/turn_endpoint.py --inline`` under callgrind counts the endpoint, whose relay thread and sockets
move a run's count by up to 4M instructions (8k per request) with the machine's load; this runs the
sans-IO core alone, the way the endpoint hands it requests (``handle_client_stun`` per datagram, the
changed allocations polled, the answers and events drained after each), so two runs of the same code
count the same to within a few hundred instructions. 500 clients send a 401-answered Allocate, then
one request per listed phase each (``alloc``, ``bind``, ``refresh``, ``delete``: a Refresh with
LIFETIME 0). A phase's instructions per request are the run with it minus the run without it, divided
by 500; they include building the phase's requests and checking its answers (about 33k instructions
for a Refresh), the same in any tree. ``--nothing`` stops before the 401s, for the 401 phase's count.

Usage: ``PYTHONHASHSEED=0 valgrind --tool=callgrind python bench/turn_core_count.py alloc,bind,refresh``
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).parent))

from netcore.stun import attributes as sa  # noqa: E402
from netcore.stun.credentials import long_term_key  # noqa: E402
from netcore.stun.message import Message, MessageClass  # noqa: E402
from netcore.turn import wire  # noqa: E402
from netcore.turn.server import ServerConfig, TurnServer  # noqa: E402
from turn_core import LISTENER, PASSWORD, REALM, USER, Relays, request  # noqa: E402

COUNT = 500
PHASES = {
    "alloc": (wire.ALLOCATE, [(wire.REQUESTED_TRANSPORT, wire.TRANSPORT_UDP), (wire.LIFETIME, 600)]),
    "bind": (wire.CHANNEL_BIND, [(wire.CHANNEL_NUMBER, 0x4000), (wire.XOR_PEER_ADDRESS, ("127.0.0.1", 9))]),
    "refresh": (wire.REFRESH, [(wire.LIFETIME, 600)]),
    "delete": (wire.REFRESH, [(wire.LIFETIME, 0)]),
}


def main() -> None:
    args = sys.argv[1:]
    nothing = "--nothing" in args
    phases = [p for a in args if a != "--nothing" for p in a.split(",") if p]
    server = TurnServer(ServerConfig(realm=REALM, users={USER: PASSWORD}, allow_loopback_peers=True,
                                     user_quota=COUNT, total_quota=COUNT, unauthorized_burst=COUNT,
                                     unauthorized_rate=COUNT), Relays())
    server.watch_changes()  # as the compiled data path's adapter does
    key = long_term_key(USER, REALM, PASSWORD, sa.ALGORITHM_MD5)
    clients = [(f"10.0.{i // 250}.{i % 250 + 1}", 5000) for i in range(COUNT)]
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)  # as servers/turn/main.py

    def run(datagrams: list[bytes]) -> list[bytes]:
        answers = []
        for client, data in zip(clients, datagrams):
            server.handle_client_stun(data, client, LISTENER, 1.0)
            server.poll_changed_allocations()
            while (transmit := server.poll_transmit()) is not None:
                answers.append(transmit.data)
            while server.poll_event() is not None:
                pass
        return answers

    if not nothing:
        answers = run([request(wire.ALLOCATE, PHASES["alloc"][1], None, key) for _ in clients])
        nonces = [Message.parse(a).get(sa.NONCE) for a in answers]
        for name in phases:
            method, attributes = PHASES[name]
            answers = run([request(method, attributes, nonce, key) for nonce in nonces])
            assert {Message.parse(a).message_class for a in answers} == {MessageClass.SUCCESS}, name
    sys.stdout.flush()
    os._exit(0)  # no teardown at exit: a run without the delete phase would pay for the deletes there


if __name__ == "__main__":
    main()
