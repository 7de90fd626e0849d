"""The direct path is cut mid-call: media moves to the TURN relay on its own, and the events say so.

Two of our peers (processes, ``netcore.testing.callpeer``) and a real
``netcore-turn`` in one network namespace made here, each on its own
address; the peers have host and relayed candidates, so the call starts on
the direct host-host pair and the relayed pairs are checked as backups.
An nftables rule in the namespace's input hook then cuts the direct path,
and nothing is renegotiated: the peers only ever saw one offer and one
answer.
"""

from __future__ import annotations

import sys
import time

import pytest

from tests.peer.netns import Netns, PeerProcess, connect, require_namespaces, wait_until

pytestmark = pytest.mark.timeout(120)

A, B, TURN = "10.201.0.1", "10.201.0.2", "10.201.0.3"
RESUMED_WITHIN = 3.0  # seconds from the cut to the first frame decoded that was sent after it


@pytest.fixture
def lab():
    require_namespaces()
    ns = Netns("sw")
    processes: list = []
    try:
        for ip in (A, B, TURN):
            ns.ex("ip", "addr", "add", f"{ip}/32", "dev", "lo")
        turn = ns.popen(sys.executable, "-m", "servers.turn.main", "--listen", f"{TURN}:3478", "--user", "test:test",
                        "--relay-ip", TURN, "--allowed-peer", "10.201.0.0/24", "--min-port", "40000",
                        "--max-port", "40100")
        processes.append(turn)
        probe = ns.popen(sys.executable, "-c", f"from tests.peers import wait_for_stun; wait_for_stun(3478, '{TURN}')")
        assert probe.wait(20) == 0, "the TURN daemon did not answer"
        yield ns, processes
    finally:
        for process in processes:
            if isinstance(process, PeerProcess):
                process.stop()
            elif process.poll() is None:
                process.terminate()
                process.wait(5)
        ns.down()


def start_call(ns: Netns, processes: list) -> tuple[PeerProcess, PeerProcess]:
    turn = ["--turn", f"{TURN}:3478", "--turn-user", "test:test", "--duration", "60"]
    a = PeerProcess(ns, A, *turn, offer=True)
    b = PeerProcess(ns, B, *turn)
    processes += [a, b]
    connect(a, b)
    assert wait_until(lambda: len(b.decoded()) >= 30 and len(a.decoded()) >= 30, 20), (a.log(), b.log())
    return a, b


def latest_path(peer: PeerProcess, direction: str) -> dict:
    paths = [p for p in peer.of("path") if p["direction"] == direction]
    assert paths, f"no {direction} path reported"
    return paths[-1]


def resumed_after(receiver: PeerProcess, sender: PeerProcess, cut: float) -> float | None:
    """Seconds from ``cut`` to the first frame decoded by ``receiver`` that ``sender`` took after the cut."""
    after = {n for n, t in sender.sent() if t > cut}
    times = [t for n, t in receiver.decoded() if n in after]
    return min(times) - cut if times else None


def direct(path: dict) -> bool:
    return not path["relayed"] and path["local_type"] == "host" and path["remote_type"] == "host"


def test_cut_direct_path_moves_both_directions_to_the_relay(lab):
    ns, processes = lab
    a, b = start_call(ns, processes)
    for peer in (a, b):
        assert direct(latest_path(peer, "send")) and direct(latest_path(peer, "receive"))
    ns.nft(f"""table inet cut {{
        chain inp {{ type filter hook input priority 0;
            ip saddr {A} ip daddr {B} drop
            ip saddr {B} ip daddr {A} drop
        }}
    }}""")
    cut = time.monotonic()
    assert wait_until(lambda: resumed_after(b, a, cut) is not None and resumed_after(a, b, cut) is not None, 8)
    assert resumed_after(b, a, cut) <= RESUMED_WITHIN, resumed_after(b, a, cut)
    assert resumed_after(a, b, cut) <= RESUMED_WITHIN, resumed_after(a, b, cut)
    for peer in (a, b):
        send, receive = latest_path(peer, "send"), latest_path(peer, "receive")
        assert send["relayed"] and send["reason"] in ("unacknowledged", "degraded"), send
        assert receive["relayed"], receive
    # Media keeps flowing on the relay: a second more of frames each way, in order.
    count_a, count_b = len(a.decoded()), len(b.decoded())
    assert wait_until(lambda: len(a.decoded()) >= count_a + 20 and len(b.decoded()) >= count_b + 20, 10)
    numbers = [n for n, _ in b.decoded()]
    assert numbers == sorted(numbers)
    assert len(a.of("offer")) == 1 and not b.of("offer")  # one negotiation, nothing after the cut


def test_only_one_direction_breaks_and_only_that_direction_moves(lab):
    """A's RTP to B is dropped (its RTCP and STUN still pass, as on a path that loses large
    packets): consent holds, but B stops acknowledging A's media, so A alone moves to the relay."""
    ns, processes = lab
    a, b = start_call(ns, processes)
    # Version 2 and a second byte outside RTCP's 192..223 (RFC 5761 section 4): RTP only.
    ns.nft(f"""table inet cut {{
        chain inp {{ type filter hook input priority 0;
            ip saddr {A} ip daddr {B} @th,64,2 2 @th,72,3 != 6 drop
        }}
    }}""")
    cut = time.monotonic()
    assert wait_until(lambda: resumed_after(b, a, cut) is not None, 8), b.log()
    assert resumed_after(b, a, cut) <= RESUMED_WITHIN, resumed_after(b, a, cut)
    send_a, receive_b = latest_path(a, "send"), latest_path(b, "receive")
    assert send_a["relayed"] and send_a["reason"] == "unacknowledged", send_a
    assert receive_b["relayed"], receive_b
    # The other direction never left the direct pair.
    assert direct(latest_path(b, "send")) and direct(latest_path(a, "receive"))
    assert not [p for p in b.of("path") if p["direction"] == "send" and p["t"] > cut]
