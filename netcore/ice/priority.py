"""Candidate and pair priorities, foundations (RFC 8445 sections 5.1.2, 5.1.1.3, 6.1.2.3).

Pure functions: the agent computes every number it puts on the wire or sorts
by through here, so the property tests can check them on their own.
"""

from __future__ import annotations

__all__ = [
    "TYPE_PREFERENCE",
    "candidate_priority",
    "pair_priority",
    "Foundations",
]

# RFC 8445 section 5.1.2.2: recommended type preferences.
TYPE_PREFERENCE = {"host": 126, "prflx": 110, "srflx": 100, "relay": 0}


def candidate_priority(cand_type: str, local_preference: int, component: int) -> int:
    """priority = 2^24 * type pref + 2^8 * local pref + (256 - component id).

    RFC 8445 section 5.1.2.1.
    """
    return (TYPE_PREFERENCE[cand_type] << 24) | ((local_preference & 0xFFFF) << 8) | (256 - component)


def pair_priority(controlling: int, controlled: int) -> int:
    """2^32 * MIN(G, D) + 2 * MAX(G, D) + (G > D ? 1 : 0), G the controlling agent's.

    RFC 8445 section 6.1.2.3.
    """
    return (min(controlling, controlled) << 32) + 2 * max(controlling, controlled) + (
        1 if controlling > controlled else 0
    )


class Foundations:
    """Hands out foundations: the same one for candidates that share type,
    base IP address, STUN/TURN server and transport (RFC 8445 section 5.1.1.3).
    """

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str, str | None, str], str] = {}

    def get(self, cand_type: str, base_ip: str, server_ip: str | None, transport: str = "udp") -> str:
        key = (cand_type, base_ip, server_ip, transport.lower())
        foundation = self._by_key.get(key)
        if foundation is None:
            foundation = self._by_key[key] = str(len(self._by_key) + 1)
        return foundation
