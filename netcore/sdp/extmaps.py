"""Header extensions in offer/answer (RFC 8285): which offered ones an
answer takes and in which direction, which ids a session can use.
"""

from __future__ import annotations

from .attributes import Extmap
from .model import DIRECTION_OF, SEND_RECV
from .wire import MediaSection

__all__ = ["answer_extmaps", "answered_extmaps", "usable_extmap_id"]


def usable_extmap_id(ext_id: int, mixed: bool) -> bool:
    # RFC 8285 sections 4.2, 4.3 and 6: 1-14 in one-byte headers; 1-255
    # (15 excluded) only once two-byte headers are agreed.
    return ext_id != 15 and 1 <= ext_id <= (255 if mixed else 14)


def answer_extmaps(
    remote: MediaSection, ours: set[str], send: bool, recv: bool, mixed: bool
) -> list[Extmap]:
    """The offered header extensions we answer, with the offer's ids.

    RFC 8285 section 7: an extension offered ``sendonly`` is answered
    ``recvonly`` (and ``recvonly`` with ``sendonly``) or left out when we do
    not go that way; ids we cannot use in this session are left out.
    """
    answered = []
    for extmap in remote.get_all("extmap"):
        if extmap.uri not in ours or not usable_extmap_id(extmap.id, mixed):
            continue
        if extmap.direction in (None, "sendrecv"):
            answered.append(Extmap(extmap.id, extmap.uri, extmap.direction))
            continue
        peer_send, peer_recv = SEND_RECV[extmap.direction]
        direction = DIRECTION_OF[(peer_recv and send, peer_send and recv)]
        if direction != "inactive":
            answered.append(Extmap(extmap.id, extmap.uri, direction))
    return answered


def answered_extmaps(
    offered: MediaSection, answered: MediaSection, mixed: bool
) -> list[Extmap]:
    """Header extensions an answer agreed to, with our direction for each.

    Only offered (id, uri) pairs count (RFC 8285 section 7); the direction
    is what both sides said, from our side.
    """
    ours = {e.id: e for e in offered.get_all("extmap")}
    agreed = []
    for extmap in answered.get_all("extmap"):
        mine = ours.get(extmap.id)
        if mine is None or mine.uri != extmap.uri:
            continue
        if not usable_extmap_id(extmap.id, mixed):
            continue
        our_send, our_recv = SEND_RECV[mine.direction or "sendrecv"]
        peer_send, peer_recv = SEND_RECV[extmap.direction or "sendrecv"]
        direction = DIRECTION_OF[(our_send and peer_recv, our_recv and peer_send)]
        if direction != "inactive":
            agreed.append(Extmap(extmap.id, extmap.uri, direction))
    return agreed
