"""Which peer addresses a TURN relay may talk to.

An open relay reachable from the Internet must not become a way into the
operator's own networks (the cloud metadata service at 169.254.169.254, the
loopback interface, RFC 1918 ranges). Every path that names a peer
(CreatePermission, ChannelBind, Send) asks :meth:`PeerPolicy.allows`.

IPv6 forms that carry an IPv4 address are reduced to it first, so that
``::ffff:127.0.0.1`` or ``64:ff9b::7f00:1`` is judged as ``127.0.0.1``:
IPv4-mapped and IPv4-compatible (RFC 4291 section 2.5.5), IPv4-translated
(SIIT, RFC 6145 / RFC 2765 section 2.1, ::ffff:0:0:0/96), NAT64 (RFC 6052,
the well-known 64:ff9b::/96 and the local-use 64:ff9b:1::/48, the IPv4
address read where RFC 6052 section 2.2 puts it for that prefix length),
6to4 (RFC 3056, 2002::/16) and Teredo (RFC 4380, 2001::/32, client address
inverted).
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

__all__ = ["PeerPolicy", "embedded_ipv4", "rfc6052_ipv4", "DEFAULT_DENIED"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Denied by default: what no public relay should reach.
DEFAULT_DENIED = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network" (RFC 1122)
        "10.0.0.0/8",  # private (RFC 1918)
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, incl. the 169.254.169.254 metadata service
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, incl. 255.255.255.255 broadcast
        "::/128",  # unspecified
        "::1/128",  # loopback
        "100::/64",  # discard-only (RFC 6666)
        "2001:db8::/32",  # documentation (RFC 3849)
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    )
)
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT (RFC 6145), not the mapped ::ffff:0:0/96
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")
_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the embedding forms."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    value = int(address)
    if address in _COMPATIBLE and value > 1:  # ::a.b.c.d (:: and ::1 are themselves)
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _TRANSLATED:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    for prefix in _NAT64:
        if address in prefix:
            return ipaddress.IPv4Address(rfc6052_ipv4(value, prefix.prefixlen))
    if address in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)
    if address in _TEREDO:
        return ipaddress.IPv4Address(~value & 0xFFFFFFFF)  # RFC 4380 section 4: inverted
    return None


def rfc6052_ipv4(value: int, prefix_length: int) -> int:
    """The IPv4 address embedded in an IPv6 address under a NAT64 prefix (RFC 6052 section 2.2).

    For prefixes shorter than /96 the 32 bits are split around bits 64-71,
    the "u" octet, which is skipped: a /48 holds 16 bits in 48-63 and 16 in
    72-87. A /96 holds them in the last 32 bits.
    """
    if prefix_length == 96:
        return value & 0xFFFFFFFF
    bits = value.to_bytes(16, "big")
    start = prefix_length // 8
    octets = (bits[start:8] + bits[9:])[:4]  # RFC 6052 section 2.2: octet 8 is "u"
    return int.from_bytes(octets, "big")


def reduce_address(address: IPAddress) -> IPAddress:
    """``address`` itself, or the IPv4 address it embeds."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return embedded
    return address


class PeerPolicy:
    """Allowed and denied peer ranges; ``allowed`` ranges override ``denied`` ones.

    The verdict for an address is: allowed if it falls in an ``allowed``
    range, else denied if it falls in a ``denied`` range (the defaults plus
    the operator's), else allowed. ``allow_loopback`` lifts the loopback
    ranges from the defaults, for tests and labs. Verdicts are cached per
    host text, in a cache of bounded size.
    """

    __slots__ = ("allowed", "denied", "_cache")

    CACHE_SIZE = 4096

    def __init__(
        self,
        denied: Iterable[str] = (),
        allowed: Iterable[str] = (),
        *,
        allow_loopback: bool = False,
        use_defaults: bool = True,
    ) -> None:
        base = [n for n in DEFAULT_DENIED if not (allow_loopback and n in _LOOPBACK)] if use_defaults else []
        self.denied: tuple[Network, ...] = tuple(base) + tuple(ipaddress.ip_network(c, strict=False) for c in denied)
        self.allowed: tuple[Network, ...] = tuple(ipaddress.ip_network(c, strict=False) for c in allowed)
        self._cache: dict[str, bool] = {}

    def allows(self, host: str) -> bool:
        """True if the relay may exchange data with ``host`` (an IP address as text)."""
        verdict = self._cache.get(host)
        if verdict is None:
            verdict = self._judge(host)
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.clear()
            self._cache[host] = verdict
        return verdict

    def _judge(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        candidates = {address, reduce_address(address)}
        if any(a in net for a in candidates for net in self.allowed if a.version == net.version):
            return True
        return not any(a in net for a in candidates for net in self.denied if a.version == net.version)
