"""One UDP port for every participant: which transport a datagram belongs to.

ICE-lite (RFC 8445 section 2.5): the server only answers connectivity
checks, so the first datagram of a participant on a new path is always a
STUN Binding request.  Its USERNAME is ``server-ufrag:client-ufrag``
(RFC 8445 section 7.2.2), and the server-ufrag, which the server chose for
that participant's answer, names the participant.  Once the participant's
ICE agent has accepted a check from a source address (integrity checked
there, not here), the address is bound to it and every later datagram from
it (DTLS, SRTP, SRTCP, STUN) is routed by the 5-tuple alone, a dictionary
lookup.  Nothing from an address that never passed a check reaches a
transport, and each participant has at most :data:`MAX_ADDRESSES` bound
addresses, so junk cannot make the table grow.
"""

from __future__ import annotations

from collections import deque

from netcore.demux import PacketKind
from netcore.net import Address, Receive
from netcore.stun.attributes import USERNAME
from netcore.stun.errors import StunParseError
from netcore.stun.message import Message

__all__ = ["PortRouter", "MAX_ADDRESSES"]

MAX_ADDRESSES = 4  # source addresses bound per participant (paths it tried); the oldest goes


class PortRouter:
    """Maps server ufrags and bound source addresses to participant ids."""

    __slots__ = ("_by_ufrag", "_by_address", "_addresses", "dropped")

    def __init__(self) -> None:
        self._by_ufrag: dict[str, str] = {}
        self._by_address: dict[Address, str] = {}
        self._addresses: dict[str, deque[Address]] = {}
        self.dropped: dict[str, int] = {"unknown_source": 0, "unknown_ufrag": 0, "stun_malformed": 0}

    def add(self, participant: str, ufrag: str) -> None:
        self._by_ufrag[ufrag] = participant
        self._addresses[participant] = deque()

    def remove(self, participant: str) -> None:
        for ufrag in [u for u, p in self._by_ufrag.items() if p == participant]:
            del self._by_ufrag[ufrag]
        for address in self._addresses.pop(participant, ()):
            self._by_address.pop(address, None)

    def route(self, datagram: Receive) -> str | None:
        """The participant ``datagram`` is for, or None (counted in :attr:`dropped`)."""
        source = datagram.source
        if datagram.kind is PacketKind.STUN:
            try:
                username = Message.parse(datagram.data).get(USERNAME)
            except StunParseError:
                self.dropped["stun_malformed"] += 1
                return None
            if isinstance(username, str):
                participant = self._by_ufrag.get(username.partition(":")[0])
                if participant is not None:
                    return participant
            # a STUN response or indication carries no USERNAME: the 5-tuple decides
        participant = self._by_address.get(source) if source is not None else None
        if participant is None:
            self.dropped["unknown_ufrag" if datagram.kind is PacketKind.STUN else "unknown_source"] += 1
        return participant

    def bind(self, participant: str, address: Address) -> None:
        """``participant``'s ICE agent accepted a check from ``address``: route it by the 5-tuple."""
        addresses = self._addresses.get(participant)
        if addresses is None or self._by_address.get(address) == participant:
            return
        previous = self._by_address.get(address)
        if previous is not None and previous in self._addresses:
            self._addresses[previous].remove(address)
        self._by_address[address] = participant
        addresses.append(address)
        if len(addresses) > MAX_ADDRESSES:
            self._by_address.pop(addresses.popleft(), None)

    def __len__(self) -> int:
        return len(self._by_address)
