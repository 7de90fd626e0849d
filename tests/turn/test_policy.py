"""Peer filtering: every denied form refused by default, embedded IPv4 reduced first."""

import ipaddress

import pytest
from hypothesis import given, strategies as st

from netcore.turn import wire as w
from netcore.turn.policy import PeerPolicy, embedded_ipv4
from tests.turn.sim import Client, error_code, make_server

DENIED_FORMS = [
    "127.0.0.1", "::1", "::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::",
    "0.0.0.0", "::", "169.254.169.254", "10.0.0.1",
    # and the rest of the default ranges
    "172.16.0.1", "192.168.1.1", "100.64.0.1", "fc00::1", "fd12::1", "fe80::1", "224.0.0.1", "ff02::1",
    "255.255.255.255", "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo for 127.0.0.1
    "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1",
    "::ffff:0:7f00:1",  # SIIT (IPv4-translated) 127.0.0.1
    "64:ff9b:1:7f00:0:100:808:808", "64:ff9b:1:a9fe:a9:fe00:808:808",  # local-use NAT64 /48: 127.0.0.1, the metadata service
    "100::1", "100::ffff:ffff:ffff:ffff",  # discard-only (RFC 6666)
    "2001:db8::1", "2001:db8:ffff::8",  # documentation (RFC 3849)
]


@pytest.mark.parametrize("host", DENIED_FORMS)
def test_denied_by_default(host):
    assert not PeerPolicy().allows(host)


@pytest.mark.parametrize("host", DENIED_FORMS[:10])
def test_create_permission_and_channel_bind_refuse_denied_peers_with_403(host):
    family = 2 if ":" in host else 1
    server, _ = make_server()
    client = Client(server)
    client.allocate((w.REQUESTED_ADDRESS_FAMILY, family))
    assert error_code(client.request(w.CREATE_PERMISSION, (w.XOR_PEER_ADDRESS, (host, 9)))) == 403
    assert error_code(client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4000),
                                     (w.XOR_PEER_ADDRESS, (host, 9)))) == 403
    assert server.stats.denied_peers == 2


@pytest.mark.parametrize("host", ["8.8.8.8", "2001:4860:4860::8888", "203.0.113.5", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(host):
    assert PeerPolicy().allows(host)


def test_allow_loopback_lifts_only_loopback():
    policy = PeerPolicy(allow_loopback=True)
    for host in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1", "::ffff:0:7f00:1"):
        assert policy.allows(host)
    assert not policy.allows("10.0.0.1") and not policy.allows("169.254.169.254")


def test_operator_lists():
    policy = PeerPolicy(denied=["8.8.8.0/24"], allowed=["10.1.0.0/16"])
    assert not policy.allows("8.8.8.8") and not policy.allows("::ffff:8.8.8.8")
    assert policy.allows("10.1.2.3") and not policy.allows("10.2.0.1")


def test_not_an_address_is_denied():
    assert not PeerPolicy().allows("example.org")


def test_embedded_forms():
    cases = {
        "::ffff:1.2.3.4": "1.2.3.4", "::1.2.3.4": "1.2.3.4", "64:ff9b::102:304": "1.2.3.4",
        "2002:102:304::1": "1.2.3.4", "2001:0:4136:e378:8000:63bf:fefd:fcfb": "1.2.3.4",
        "::ffff:0:102:304": "1.2.3.4",  # SIIT
        "64:ff9b:1:102:3:400::": "1.2.3.4",  # RFC 6052 /48: bits 48-63, u octet, bits 72-87
        "64:ff9b:1:102:3:400:a00:1": "1.2.3.4",  # the suffix is not the address
    }
    for v6, v4 in cases.items():
        assert embedded_ipv4(ipaddress.IPv6Address(v6)) == ipaddress.IPv4Address(v4)
    assert embedded_ipv4(ipaddress.IPv6Address("2001:db8::1")) is None


@given(st.integers(0, 2**32 - 1))
def test_every_embedding_of_a_denied_ipv4_is_denied(value):
    v4 = ipaddress.IPv4Address(value)
    policy = PeerPolicy()
    expected = policy.allows(str(v4))
    local_use = (0x64FF9B0001 << 80) | ((value >> 16) << 64) | ((value & 0xFFFF) << 40)  # RFC 6052 /48
    siit = (0xFFFF << 48) | value
    for v6 in (f"::ffff:{v4}", f"64:ff9b::{v4}", str(ipaddress.IPv6Address((0x2002 << 112) | (value << 80))),
               str(ipaddress.IPv6Address(local_use)), str(ipaddress.IPv6Address(siit))):
        assert policy.allows(v6) == expected, v6
