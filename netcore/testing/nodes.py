"""Our cores as nodes of the simulated network: a STUN server, a TURN server, an ICE agent.

Each function binds the core's addresses on a :class:`~netcore.testing.simnet.Network`
(and adapts the ``handle_datagram`` signature of a core not yet on the
contract); the TURN server's relayed addresses are handed out on its own
public IP by :class:`SimRelays`.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

from netcore.net import Address
from netcore.stun.server import BindingServer
from netcore.testing.simnet import Network, Node
from netcore.turn.server import ServerConfig, TurnServer

__all__ = ["add_stun_server", "add_turn_server", "add_agent", "SimRelays", "counter_random"]



def counter_random(seed: int = 0) -> Callable[[int], bytes]:
    """A deterministic ``random(n)`` for cores (transaction ids, tie-breakers, credentials)."""
    import random as _random

    rng = _random.Random(seed)
    return lambda n: rng.randbytes(n)


def add_stun_server(network: Network, address: Address) -> Node:
    server = BindingServer()
    return network.add_node(server, [address])


class SimRelays:
    """Relayed addresses on the TURN server's IP, bound on the network as the server's own."""

    families = frozenset({1})

    def __init__(self, network: Network, ip: str, first_port: int = 49152) -> None:
        self.network = network
        self.ip = ip
        self._ports = itertools.count(first_port)
        self.node: Node | None = None
        self.open: set[Address] = set()

    def open_relay(self, family: int, *, transport: int = 17, even_port: bool = False,
                   dont_fragment: bool = False, port: int | None = None) -> Address | None:
        if family != 1 or transport != 17:
            return None  # the simulated network carries datagrams only
        number = port if port is not None else next(self._ports)
        if even_port and number & 1:
            number = next(self._ports)
        relayed = (self.ip, number)
        self.open.add(relayed)
        assert self.node is not None
        self.network.bind(relayed, self.node)
        return relayed

    def close_relay(self, relayed: Address) -> None:
        self.open.discard(relayed)
        self.network.unbind(relayed)


def add_turn_server(network: Network, address: Address, users: dict[str, str],
                    realm: str = "sim", random: Callable[[int], bytes] | None = None) -> Node:
    """Our TURN server core on ``address``; relayed addresses on the same IP."""
    relays = SimRelays(network, address[0])
    server = TurnServer(ServerConfig(realm=realm, users=users), relays, random=random or counter_random(99))
    node = network.add_node(server, [(address[0], address[1])])  # the relayed addresses are bound as they open
    relays.node = node
    return node


def add_agent(network: Network, agent: Any, addresses: list[Address],
              components: list[int] | None = None) -> Node:
    """An ICE agent with one socket per address (registered as host candidate bases,
    of component 1 unless ``components`` says otherwise, one entry per address)."""
    for address, component in zip(addresses, components or [1] * len(addresses)):
        agent.add_local_address(address, component)
    return network.add_node(agent, addresses)
