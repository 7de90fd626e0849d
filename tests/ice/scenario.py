"""Two ICE agents on the simulated network, with a STUN and a TURN server on the public side.

Signalling is modelled too: each gathered candidate (and end-of-candidates)
reaches the other agent ``signal_delay`` later, as trickle ICE would carry it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netcore.ice.agent import Agent, TurnServerConfig
from netcore.ice.events import CandidateGathered, DataReceived, GatheringCompleted
from netcore.testing.nodes import add_agent, add_stun_server, add_turn_server, counter_random
from netcore.testing.simnet import NAT_TYPES, PUBLIC, Link, Network, Node

STUN = ("203.0.113.1", 3478)
TURN = ("203.0.113.2", 3478)
USERS = {"user": "pass"}


@dataclass
class Side:
    agent: Agent
    node: Node
    ip: str  # the host's own address
    public_ip: str  # its NAT's address, or its own
    peer: Side | None = None
    signalled: list[Any] = field(default_factory=list)


@dataclass
class Call:
    net: Network
    a: Side
    b: Side
    turn: Node

    def connected(self) -> bool:
        return self.a.agent.connected and self.b.agent.connected

    def run_until_connected(self, timeout: float = 60.0) -> bool:
        return self.net.run(until=self.net.now + timeout, stop=self.connected)


def _side(net: Network, name: str, nat_type: str, index: int, controlling: bool, seed: int,
          stun: bool, turn: bool, options: dict[str, Any]) -> Side:
    public_ip = f"198.51.100.{index}"
    behaviours = NAT_TYPES[nat_type]
    if behaviours is None:
        ip = net.add_host(public_ip, PUBLIC, Link(delay=0.01))
    else:
        net.add_nat(name, public_ip, *behaviours, link=Link(delay=0.01))
        ip = net.add_host(f"10.0.{index}.2", name, Link(delay=0.001))
    agent = Agent(
        controlling,
        stun_servers=(STUN,) if stun else (),
        turn_servers=(TurnServerConfig(TURN, "user", "pass"),) if turn else (),
        random=counter_random(seed * 10 + index),
        **options,
    )
    node = add_agent(net, agent, [(ip, 5000)])
    return Side(agent, node, ip, public_ip)


def _signal(net: Network, sender: Side, delay: float) -> None:
    def on_event(event: Any) -> None:
        receiver = sender.peer
        assert receiver is not None
        if isinstance(event, CandidateGathered):
            sender.signalled.append(event.candidate)
            net.call_at(net.now + delay, _deliver, receiver, event.candidate)
        elif isinstance(event, GatheringCompleted):
            net.call_at(net.now + delay, _deliver, receiver, None)

    sender.node.on_event = on_event


def _deliver(receiver: Side, candidate: Any) -> None:
    receiver.agent.add_remote_candidate(candidate, receiver.node.network.now)
    receiver.node.flush()


def exchange_credentials(call: Call) -> None:
    now = call.net.now
    call.a.agent.set_remote_credentials(call.b.agent.local_ufrag, call.b.agent.local_pwd, now)
    call.b.agent.set_remote_credentials(call.a.agent.local_ufrag, call.a.agent.local_pwd, now)


def make_call(nat_a: str = "none", nat_b: str = "none", *, seed: int = 0, stun: bool = True,
              turn: bool = True, signal_delay: float = 0.05, a_options: dict[str, Any] | None = None,
              b_options: dict[str, Any] | None = None, signal_b: bool = True, **options: Any) -> Call:
    """Two agents (A controlling) behind ``nat_a`` and ``nat_b``, gathering and trickling."""
    net = Network(seed)
    net.add_host(STUN[0], PUBLIC, Link(delay=0.01))
    net.add_host(TURN[0], PUBLIC, Link(delay=0.01))
    add_stun_server(net, STUN)
    turn_node = add_turn_server(net, TURN, USERS)
    a = _side(net, "nat-a", nat_a, 1, True, seed, stun, turn, {**options, **(a_options or {})})
    b = _side(net, "nat-b", nat_b, 2, False, seed, stun, turn, {**options, **(b_options or {})})
    a.peer, b.peer = b, a
    _signal(net, a, signal_delay)
    if signal_b:
        _signal(net, b, signal_delay)
    else:
        net.call_at(0.0, _deliver, a, None)  # B signals nothing but end-of-candidates
    call = Call(net, a, b, turn_node)
    exchange_credentials(call)
    for side in (a, b):
        side.agent.gather(net.now)
        side.node.flush()
    return call


def stream(call: Call, sender: Side, start: float, count: int, interval: float = 0.02) -> None:
    """Schedule ``count`` numbered datagrams (RTP-looking first byte) from ``sender``."""
    def send(seq: int) -> None:
        sender.agent.send(bytes([0x80, 0]) + seq.to_bytes(4, "big"), call.net.now)
        sender.node.flush()

    for seq in range(count):
        call.net.call_at(start + seq * interval, send, seq)


def received(side: Side) -> list[DataReceived]:
    """The application data ``side`` received, in order."""
    return [event for event in side.node.events if isinstance(event, DataReceived)]


def received_numbers(side: Side) -> list[int]:
    return [int.from_bytes(event.data[2:6], "big") for event in received(side)]
