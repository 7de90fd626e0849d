"""The TURN server core under a fake clock: every request type, error path and expiry."""

import pytest

from netcore.net import Receive
from netcore.stun import attributes as sa
from netcore.stun.message import BINDING, Message, MessageClass
from netcore.turn import wire as w
from netcore.turn.auth import NonceIssuer
from netcore.turn.credentials import rest_api_password
from netcore.turn.server_events import AllocationDeleted, AllocationGranted, AllocationRenewed
from tests.turn.sim import CLIENT, PEER, SERVER, Client, FakeRelays, drain, error_code, events, make_server

pytestmark = pytest.mark.usefixtures("stun_codec")  # the compiled codec and Python alike

PEER2 = ("203.0.113.9", 6000)


def allocated(**options):
    server, relays = make_server(**options)
    client = Client(server)
    answer = client.allocate()
    assert error_code(answer) is None, answer
    return server, relays, client, answer.get(w.XOR_RELAYED_ADDRESS)


# -- Binding and the basics -------------------------------------------------------


def test_binding_is_answered_on_the_turn_port_without_auth():
    server, _ = make_server()
    answer = Client(server).request(BINDING, signed=False)
    assert answer.message_class == MessageClass.SUCCESS
    assert answer.get(sa.XOR_MAPPED_ADDRESS) == CLIENT


def test_first_allocate_is_challenged_with_realm_nonce_and_algorithms():
    server, _ = make_server()
    answer = Client(server).request(w.ALLOCATE, (w.REQUESTED_TRANSPORT, 17), signed=False)
    assert error_code(answer) == 401
    assert answer.get(sa.REALM) == "example.org"
    assert answer.get(sa.NONCE).startswith("obMatJos2")
    assert answer.get(sa.PASSWORD_ALGORITHMS) == ((sa.ALGORITHM_SHA256, b""), (sa.ALGORITHM_MD5, b""))
    assert not server.allocations  # a 401 keeps no state
    assert server.stats.auth_failures == 1


def test_allocate_success_is_signed_and_carries_addresses_and_lifetime():
    server, relays = make_server()
    client = Client(server)
    answer = client.allocate()
    assert answer.message_class == MessageClass.SUCCESS
    assert answer.check_integrity(client.key)
    assert answer.get(w.XOR_RELAYED_ADDRESS) in relays.open
    assert answer.get(sa.XOR_MAPPED_ADDRESS) == CLIENT
    assert answer.get(w.LIFETIME) == 600
    created = [e for e in events(server) if isinstance(e, AllocationGranted)]
    assert created[0].username == "alice" and created[0].client == CLIENT


def learn_nonce(client: Client) -> None:
    answer = client.request(w.ALLOCATE, (w.REQUESTED_TRANSPORT, 17), signed=False)
    assert error_code(answer) == 401
    client.nonce, client.realm = answer.get(sa.NONCE), answer.get(sa.REALM)


def signed_allocate(client: Client) -> bytes:
    """An Allocate signed with ``client``'s nonce, to be sent (and resent) as it is."""
    request = Message(w.ALLOCATE, MessageClass.REQUEST)
    request.add(w.REQUESTED_TRANSPORT, 17).add(sa.USERNAME, "alice").add(sa.REALM, client.realm)
    request.add(sa.NONCE, client.nonce)
    return request.encode(client.key)


def test_allocate_retransmission_gets_the_same_answer_and_a_new_one_gets_437():
    server, _ = make_server()
    client = Client(server)
    learn_nonce(client)
    first = signed_allocate(client)
    answered = client.send_raw(first)[0][0]
    assert Message.parse(answered).message_class == MessageClass.SUCCESS
    assert client.send_raw(first)[0][0] == answered  # the same bytes again
    again = client.send_raw(signed_allocate(client))  # a new transaction on the same 5-tuple
    assert error_code(Message.parse(again[0][0])) == 437


def test_a_stored_allocate_answer_is_dropped_once_its_retransmission_window_has_passed():
    """RFC 8489 section 6.3.1: the answer is remembered for the 40 s a client retransmits (and not for
    the allocation's lifetime): within them a retransmission gets it again, after them 437 as any Allocate
    on a 5-tuple in use."""
    server, _ = make_server()
    client = Client(server)
    learn_nonce(client)
    first = signed_allocate(client)
    answered = client.send_raw(first, now=0.0)[0][0]
    assert Message.parse(answered).message_class == MessageClass.SUCCESS
    server.handle_timeout(39.0)
    assert client.send_raw(first, now=39.5)[0][0] == answered  # late, but within the client's 39.5 s
    server.handle_timeout(41.0)
    late = client.send_raw(first, now=41.0)
    assert error_code(Message.parse(late[0][0])) == 437
    assert server.allocation(CLIENT, SERVER) is not None  # the allocation itself lives on
    assert not server._answers  # the answer is freed in the sweep, not by the allocation's delete


@pytest.mark.parametrize("attributes, code", [
    ((), 400),  # no REQUESTED-TRANSPORT
    (((w.REQUESTED_TRANSPORT, w.TRANSPORT_TCP),), 400),  # RFC 6062: TCP relays only over TCP/TLS
    (((w.REQUESTED_TRANSPORT, 132),), 442),
    (((w.REQUESTED_TRANSPORT, 17), (w.REQUESTED_ADDRESS_FAMILY, 3)), 440),
    (((w.REQUESTED_TRANSPORT, 17), (w.REQUESTED_ADDRESS_FAMILY, 1), (w.ADDITIONAL_ADDRESS_FAMILY, 2)), 400),
    (((w.REQUESTED_TRANSPORT, 17), (w.ADDITIONAL_ADDRESS_FAMILY, 1)), 400),
    (((w.REQUESTED_TRANSPORT, 17), (w.RESERVATION_TOKEN, b"12345678")), 508),
    (((w.REQUESTED_TRANSPORT, 17), (w.RESERVATION_TOKEN, b"12345678"), (w.EVEN_PORT, False)), 400),
])
def test_allocate_refusals(attributes, code):
    server, _ = make_server()
    answer = Client(server).request(w.ALLOCATE, *attributes)
    assert error_code(answer) == code
    assert not server.allocations


def test_ipv6_relay_when_the_provider_has_none_is_440():
    server, _ = make_server(relays=FakeRelays(families=frozenset({1})))
    answer = Client(server).allocate((w.REQUESTED_ADDRESS_FAMILY, 2))
    assert error_code(answer) == 440


def test_dual_stack_allocation_gets_two_relayed_addresses():
    server, _ = make_server()
    answer = Client(server).allocate((w.ADDITIONAL_ADDRESS_FAMILY, 2))
    relayed = answer.get_all(w.XOR_RELAYED_ADDRESS)
    assert [r[0] for r in relayed] == ["192.0.2.1", "2001:db8::1"]


def test_dual_stack_without_ipv6_reports_address_error_code():
    server, _ = make_server(relays=FakeRelays(families=frozenset({1})))
    answer = Client(server).allocate((w.ADDITIONAL_ADDRESS_FAMILY, 2))
    assert answer.message_class == MessageClass.SUCCESS
    assert len(answer.get_all(w.XOR_RELAYED_ADDRESS)) == 1
    assert answer.get(w.ADDRESS_ERROR_CODE)[:2] == (2, 440)


def test_even_port_with_reservation_then_allocate_with_the_token():
    server, relays = make_server()
    first = Client(server).allocate((w.EVEN_PORT, True))
    relayed = first.get(w.XOR_RELAYED_ADDRESS)
    token = first.get(w.RESERVATION_TOKEN)
    assert relayed[1] % 2 == 0 and len(token) == 8
    other = Client(server, addr=("198.51.100.7", 40001))
    second = other.allocate((w.RESERVATION_TOKEN, token))
    assert second.get(w.XOR_RELAYED_ADDRESS) == (relayed[0], relayed[1] + 1)
    third = Client(server, addr=("198.51.100.7", 40002)).allocate((w.RESERVATION_TOKEN, token))
    assert error_code(third) == 508  # used up


def test_unused_reservation_is_released_after_30_seconds():
    server, relays = make_server()
    Client(server).allocate((w.EVEN_PORT, True))
    assert len(relays.open) == 2
    server.handle_timeout(31.0)
    assert len(relays.open) == 1


def test_dont_fragment_is_accepted():
    server, _ = make_server()
    answer = Client(server).allocate((w.DONT_FRAGMENT, True))
    assert answer.message_class == MessageClass.SUCCESS


def test_unknown_comprehension_required_attribute_is_420():
    server, _ = make_server()
    message = Message(w.ALLOCATE, MessageClass.REQUEST).add(w.REQUESTED_TRANSPORT, 17).add_raw(0x0042, b"abcd")
    answer = Message.parse(Client(server).send_raw(message.encode())[0][0])
    assert error_code(answer) == 420
    assert answer.get(sa.UNKNOWN_ATTRIBUTES) == (0x0042,)


# -- lifetimes ----------------------------------------------------------------------


@pytest.mark.parametrize("requested, granted", [(4000, 3600), (1200, 1200), (10, 600)])
def test_allocate_lifetime_is_clamped(requested, granted):
    server, _ = make_server()
    answer = Client(server).allocate((w.LIFETIME, requested))
    assert answer.get(w.LIFETIME) == granted


def test_allocation_expires_and_frees_its_port():
    server, relays, client, relayed = allocated()
    server.handle_timeout(599.0)
    assert server.allocations
    server.handle_timeout(600.0)
    assert not server.allocations and relayed not in relays.open
    deleted = [e for e in events(server) if isinstance(e, AllocationDeleted)]
    assert deleted[0].reason == "expired"
    assert server.stats.allocations_expired == 1


def test_refresh_extends_and_zero_deletes():
    server, relays, client, relayed = allocated()
    client.now = 500.0
    answer = client.request(w.REFRESH, (w.LIFETIME, 900))
    assert answer.get(w.LIFETIME) == 900
    assert any(isinstance(e, AllocationRenewed) for e in events(server))
    server.handle_timeout(1300.0)
    assert server.allocations
    answer = client.request(w.REFRESH, (w.LIFETIME, 0))
    assert answer.message_class == MessageClass.SUCCESS and answer.get(w.LIFETIME) == 0
    assert not server.allocations and not relays.open


def test_refresh_without_allocation_is_437_and_other_user_441():
    server, _ = make_server()
    assert error_code(Client(server).request(w.REFRESH)) == 437
    server, _, client, _ = allocated()
    bob = Client(server, username="bob", password="hunter2")
    assert error_code(bob.request(w.REFRESH)) == 441


def test_refresh_for_a_family_not_allocated_is_443():
    server, _, client, _ = allocated()
    assert error_code(client.request(w.REFRESH, (w.REQUESTED_ADDRESS_FAMILY, 2))) == 443


# -- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("username, password", [("alice", "wrong"), ("mallory", "secret")])
def test_bad_credentials_are_401(username, password):
    server, _ = make_server()
    answer = Client(server, username=username, password=password).allocate()
    assert error_code(answer) == 401
    assert not server.allocations


def test_integrity_without_username_is_400():
    server, _ = make_server()
    message = Message(w.ALLOCATE, MessageClass.REQUEST).add(w.REQUESTED_TRANSPORT, 17)
    answer = Message.parse(Client(server).send_raw(message.encode(b"k" * 16))[0][0])
    assert error_code(answer) == 400


def test_wrong_realm_is_401():
    server, _ = make_server()
    client = Client(server)
    client.allocate()
    client.realm = "other"
    assert error_code(client.request(w.REFRESH)) == 401


def test_stale_nonce_is_438_with_a_fresh_one():
    server, _, client, _ = allocated(nonce_lifetime=100)
    old = client.nonce
    client.now = 150.0
    message = Message(w.REFRESH, MessageClass.REQUEST)
    message.add(sa.USERNAME, "alice").add(sa.REALM, client.realm).add(sa.NONCE, old)
    answer = Message.parse(client.send_raw(message.encode(client.key))[0][0])
    assert error_code(answer) == 438
    assert answer.get(sa.NONCE) != old and answer.get(sa.REALM) == "example.org"
    assert client.request(w.REFRESH).message_class == MessageClass.SUCCESS  # the helper retries
    assert server.stats.stale_nonces >= 1


def test_nonce_of_another_address_is_stale():
    server, _, client, _ = allocated()
    thief = Client(server, addr=("198.51.100.8", 1234))
    thief.nonce, thief.realm = client.nonce, client.realm
    message = Message(w.ALLOCATE, MessageClass.REQUEST).add(w.REQUESTED_TRANSPORT, 17)
    message.add(sa.USERNAME, "alice").add(sa.REALM, client.realm).add(sa.NONCE, client.nonce)
    answer = Message.parse(thief.send_raw(message.encode(client.key))[0][0])
    assert error_code(answer) == 438


def test_a_nonce_checked_once_is_remembered_but_still_ages(monkeypatch):
    monkeypatch.setattr(NonceIssuer, "CACHE_SIZE", 8)
    issuer = NonceIssuer(bytes(32), lifetime=100)
    client = ("192.0.2.9", 1)
    nonce = issuer.issue(client, 10.0)
    assert issuer.is_fresh(nonce, client, 20.0)
    assert issuer.is_fresh(nonce, client, 109.0)
    assert not issuer.is_fresh(nonce, client, 110.0)  # remembered, and stale all the same
    assert not issuer.is_fresh(nonce, ("192.0.2.9", 2), 20.0)  # minted for another address
    assert not issuer.is_fresh(nonce[:-1] + ("1" if nonce.endswith("0") else "0"), client, 20.0)  # MAC altered
    for port in range(2, 40):
        assert issuer.is_fresh(issuer.issue(("192.0.2.9", port), 10.0), ("192.0.2.9", port), 20.0)
    assert len(issuer._issued) <= 8  # bounded whatever the clients send
    assert issuer.is_fresh(nonce, client, 20.0)  # forgotten, checked again


def test_message_integrity_sha256_and_password_algorithms():
    server, _ = make_server()
    client = Client(server, sha256=True)
    answer = client.allocate()
    assert answer.message_class == MessageClass.SUCCESS
    assert answer.has_integrity_sha256 and answer.check_integrity_sha256(client.key)


def test_password_algorithms_not_matching_ours_is_400():
    server, _ = make_server()
    client = Client(server)
    client.allocate()
    message = Message(w.REFRESH, MessageClass.REQUEST)
    message.add(sa.USERNAME, "alice").add(sa.REALM, client.realm).add(sa.NONCE, client.nonce)
    message.add(sa.PASSWORD_ALGORITHM, (sa.ALGORITHM_MD5, b""))
    message.add(sa.PASSWORD_ALGORITHMS, ((sa.ALGORITHM_MD5, b""),))
    answer = Message.parse(client.send_raw(message.encode(client.key))[0][0])
    assert error_code(answer) == 400


def test_rest_api_credentials_with_two_secrets_and_expiry():
    server, _ = make_server(users={}, auth_secrets=("new", "old"))
    now_unix = 1_700_000_000
    for index, secret in enumerate(("new", "old")):
        username = f"{now_unix + 3600}:{secret}user"
        client = Client(server, addr=("198.51.100.7", 1000 + index), username=username,
                        password=rest_api_password(secret, username))
        assert client.allocate().message_class == MessageClass.SUCCESS
    expired = f"{now_unix - 1}:late"
    client = Client(server, addr=("198.51.100.7", 2000), username=expired, password=rest_api_password("new", expired))
    assert error_code(client.allocate()) == 401


def test_static_users_and_rest_secret_together():
    server, _ = make_server(auth_secrets=("s",))
    assert Client(server).allocate().message_class == MessageClass.SUCCESS
    username = "1700003600:carol"
    carol = Client(server, addr=("198.51.100.9", 1), username=username, password=rest_api_password("s", username))
    assert carol.allocate().message_class == MessageClass.SUCCESS


def test_401_answers_are_rate_limited_per_source():
    server, _ = make_server(unauthorized_rate=1.0, unauthorized_burst=3.0)
    client = Client(server)
    message = Message(w.ALLOCATE, MessageClass.REQUEST).add(w.REQUESTED_TRANSPORT, 17).encode()
    answered = sum(1 for _ in range(10) if client.send_raw(message))
    assert answered == 3
    assert server.stats.unauthorized_rate_limited == 7
    assert Client(server, addr=("198.51.100.99", 1)).send_raw(message)  # another source is not affected
    assert client.send_raw(message, now=2.0)  # tokens come back


def test_reconfigure_keeps_allocations_and_changes_users():
    server, _, client, _ = allocated()
    config = server.config
    config.users = {"dave": "pw"}
    server.reconfigure(config)
    assert server.allocations
    assert error_code(client.request(w.REFRESH)) == 401
    assert Client(server, addr=("198.51.100.1", 9), username="dave", password="pw").allocate().message_class \
        == MessageClass.SUCCESS


# -- quotas -------------------------------------------------------------------------------------


def test_user_and_total_quotas_are_486():
    server, _ = make_server(user_quota=2, total_quota=3)
    for port in (1, 2):
        assert Client(server, addr=("198.51.100.1", port)).allocate().message_class == MessageClass.SUCCESS
    assert error_code(Client(server, addr=("198.51.100.1", 3)).allocate()) == 486
    bob = lambda port: Client(server, addr=("198.51.100.2", port), username="bob", password="hunter2")  # noqa: E731
    assert bob(1).allocate().message_class == MessageClass.SUCCESS
    assert error_code(bob(2).allocate()) == 486
    assert server.stats.quota_refusals == 2


def test_port_exhaustion_is_508_and_counted():
    server, _ = make_server(relays=FakeRelays(ports=range(50000, 50001)))
    assert Client(server, addr=("198.51.100.1", 1)).allocate().message_class == MessageClass.SUCCESS
    assert error_code(Client(server, addr=("198.51.100.1", 2)).allocate()) == 508
    assert server.stats.port_exhaustion == 1


# -- permissions, Send and Data indications ----------------------------------------------------------


def send_indication(peer, data: bytes) -> bytes:
    return Message(w.SEND, MessageClass.INDICATION).add(w.XOR_PEER_ADDRESS, peer).add(w.DATA_ATTR, data).encode()


def test_create_permission_for_several_peers_then_send_and_data_indications():
    server, _, client, relayed = allocated()
    answer = client.request(w.CREATE_PERMISSION, (w.XOR_PEER_ADDRESS, PEER), (w.XOR_PEER_ADDRESS, PEER2))
    assert answer.message_class == MessageClass.SUCCESS and answer.check_integrity(client.key)
    assert set(server.allocation(CLIENT, SERVER).permissions) == {PEER[0], PEER2[0]}
    out = client.send_raw(send_indication(PEER2, b"hello"))
    assert out == [(b"hello", PEER2, relayed)]
    server.handle_datagram(Receive(b"world", PEER, relayed), 1.0)
    [(data, addr, local)] = drain(server)
    assert addr == CLIENT and local == SERVER
    indication = Message.parse(data)
    assert indication.method == w.DATA and indication.message_class == MessageClass.INDICATION
    assert indication.get(w.XOR_PEER_ADDRESS) == PEER and indication.get(w.DATA_ATTR) == b"world"


def test_without_permission_nothing_is_relayed():
    server, _, client, relayed = allocated()
    assert client.send_raw(send_indication(PEER, b"x")) == []
    server.handle_datagram(Receive(b"x", PEER, relayed), 1.0)
    assert drain(server) == []
    assert server.stats.dropped == 2


def test_permission_expires_after_300_seconds_and_refreshes():
    server, _, client, relayed = allocated()
    client.request(w.CREATE_PERMISSION, (w.XOR_PEER_ADDRESS, PEER))
    client.now = 200.0
    client.request(w.CREATE_PERMISSION, (w.XOR_PEER_ADDRESS, PEER))
    server.handle_timeout(499.0)
    assert PEER[0] in server.allocation(CLIENT, SERVER).permissions
    server.handle_timeout(500.0)
    assert PEER[0] not in server.allocation(CLIENT, SERVER).permissions


def test_create_permission_refusals():
    server, _, client, _ = allocated()
    assert error_code(client.request(w.CREATE_PERMISSION)) == 400
    assert error_code(client.request(w.CREATE_PERMISSION, (w.XOR_PEER_ADDRESS, ("2001:db8::5", 1)))) == 443
    # all or nothing: one denied peer refuses the lot
    answer = client.request(w.CREATE_PERMISSION, (w.XOR_PEER_ADDRESS, PEER), (w.XOR_PEER_ADDRESS, ("10.1.2.3", 1)))
    assert error_code(answer) == 403
    assert not server.allocation(CLIENT, SERVER).permissions
    assert error_code(Client(server, addr=("198.51.100.50", 1)).request(
        w.CREATE_PERMISSION, (w.XOR_PEER_ADDRESS, PEER))) == 437


def test_permission_cap_is_508():
    server, _, client, _ = allocated(max_permissions=2)
    peers = [(w.XOR_PEER_ADDRESS, (f"203.0.113.{i}", 1)) for i in range(1, 4)]
    assert error_code(client.request(w.CREATE_PERMISSION, *peers)) == 508


# -- channels ------------------------------------------------------------------------------------------


def test_channel_bind_and_channel_data_both_ways():
    server, _, client, relayed = allocated()
    answer = client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4001), (w.XOR_PEER_ADDRESS, PEER))
    assert answer.message_class == MessageClass.SUCCESS
    assert PEER[0] in server.allocation(CLIENT, SERVER).permissions  # the binding installs a permission
    out = client.send_raw(w.encode_channel_data(0x4001, b"payload", pad=True))
    assert out == [(b"payload", PEER, relayed)]
    server.handle_datagram(Receive(b"back", PEER, relayed), 1.0)
    assert drain(server) == [(w.encode_channel_data(0x4001, b"back"), CLIENT, SERVER)]
    allocation = server.allocation(CLIENT, SERVER)
    assert (allocation.packets_to_peer, allocation.packets_to_client) == (1, 1)


def test_channel_data_on_unbound_channel_or_overrun_is_dropped():
    server, _, client, _ = allocated()
    client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4001), (w.XOR_PEER_ADDRESS, PEER))
    assert client.send_raw(w.encode_channel_data(0x4002, b"x")) == []
    assert client.send_raw(b"\x40\x01\x00\x10abc") == []


@pytest.mark.parametrize("number", [0x3FFF, 0x5000, 0x7FFF, 0xFFFF])
def test_channel_numbers_outside_the_rfc_8656_range_are_400(number):
    server, _, client, _ = allocated()
    assert error_code(client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, number), (w.XOR_PEER_ADDRESS, PEER))) == 400


def test_legacy_channel_numbers_when_configured():
    server, _, client, relayed = allocated(channel_max=0x7FFF)
    assert client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x6D2A), (w.XOR_PEER_ADDRESS, PEER)).message_class \
        == MessageClass.SUCCESS
    assert client.send_raw(w.encode_channel_data(0x4000, b"")[:0] + b"\x6d\x2a\x00\x01z") == [(b"z", PEER, relayed)]


def test_channel_rebinding_rules():
    server, _, client, _ = allocated()
    bind = lambda number, peer: error_code(client.request(  # noqa: E731
        w.CHANNEL_BIND, (w.CHANNEL_NUMBER, number), (w.XOR_PEER_ADDRESS, peer)))
    assert bind(0x4001, PEER) is None
    assert bind(0x4001, PEER) is None  # the same binding again refreshes it
    assert bind(0x4001, PEER2) == 400  # number bound to another peer
    assert bind(0x4002, PEER) == 400  # peer bound to another number
    assert bind(0x4002, PEER2) is None
    assert bind(0x4003, ("2001:db8::9", 1)) == 443
    assert bind(0x4003, ("127.0.0.1", 1)) == 403
    assert error_code(client.request(w.CHANNEL_BIND, (w.XOR_PEER_ADDRESS, PEER))) == 400


def test_channel_expires_after_600_seconds_then_cools_down_for_5_minutes():
    server, _, client, relayed = allocated()
    client.request(w.REFRESH, (w.LIFETIME, 3600))
    client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4001), (w.XOR_PEER_ADDRESS, PEER))
    server.handle_timeout(599.0)
    assert 0x4001 in server.allocation(CLIENT, SERVER).channels
    server.handle_timeout(600.0)
    allocation = server.allocation(CLIENT, SERVER)
    assert 0x4001 not in allocation.channels and PEER not in allocation.peer_channels
    client.now = 700.0
    bind = lambda number, peer: error_code(client.request(  # noqa: E731
        w.CHANNEL_BIND, (w.CHANNEL_NUMBER, number), (w.XOR_PEER_ADDRESS, peer)))
    assert bind(0x4001, PEER2) == 400
    assert bind(0x4002, PEER) == 400
    assert bind(0x4001, PEER) is None  # the same pair may come back
    server.handle_timeout(1400.0)
    client.now = 1400.0
    client.request(w.REFRESH, (w.LIFETIME, 3600))
    server.handle_timeout(1310.0 + 600)
    server.handle_timeout(1310.0 + 600 + 301)
    client.now = 1310.0 + 600 + 301
    assert bind(0x4001, PEER2) is None  # cooldown over


def test_an_allocations_tables_are_one_shared_empty_mapping_until_their_first_entry():
    """Issue 21: an allocation's tables (permissions, channels, cooldowns, routes) are made on their first
    entry, and its bandwidth bucket on its first draw: each empty dict is 64 bytes and one more object to
    free when the allocation ends. The first entry gives that allocation a table of its own, never a write
    into the shared one (it is read-only), and what was bound relays and cools down as before."""
    server, _, client, _ = allocated()
    other = Client(server, addr=("198.51.100.9", 40002))
    assert other.allocate().message_class == MessageClass.SUCCESS
    bound, idle = server.allocation(CLIENT, SERVER), server.allocation(("198.51.100.9", 40002), SERVER)
    tables = ("permissions", "channels", "peer_channels", "cooldown", "routes", "peer_routes")
    for name in tables:
        assert getattr(bound, name) is getattr(idle, name) and not getattr(idle, name)
    assert bound.bucket is None  # no cap: nothing draws on it
    for each in (client, other):
        each.request(w.REFRESH, (w.LIFETIME, 3600))  # to outlive the channel
    client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4001), (w.XOR_PEER_ADDRESS, PEER))
    assert [r.peer for r in bound.routes.values()] == [PEER] and list(bound.peer_routes) == [PEER]
    assert set(bound.permissions) == {PEER[0]} and list(bound.channels) == [0x4001]
    assert bound.cooldown is idle.cooldown  # nothing has cooled down
    for name in tables:
        assert not getattr(idle, name)
    server.handle_timeout(600.0)  # the channel expires and cools down; the permission expired at 300
    assert bound.cooldown is not idle.cooldown and PEER in bound.cooldown and not idle.cooldown
    assert not bound.routes and not bound.channels


def test_a_bandwidth_bucket_made_on_the_first_draw_starts_full():
    """The bucket of an allocation under a cap is made when it first relays, with the one second of burst
    it would have had from its start."""
    server, _, client, relayed = allocated(max_bps=1000)
    client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4001), (w.XOR_PEER_ADDRESS, PEER))
    allocation = server.allocation(CLIENT, SERVER)
    assert allocation.bucket is None
    for size in (600, 400, 1):  # 1000 bytes of burst, then nothing more within the same instant
        server.handle_datagram(Receive(bytes(size), PEER, relayed), 5.0)
    assert allocation.bytes_to_client == 1000 and server.stats.bandwidth_dropped == 1
    assert allocation.bucket is not None


def test_channel_cap_is_508():
    server, _, client, _ = allocated(max_channels=1)
    client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4001), (w.XOR_PEER_ADDRESS, PEER))
    assert error_code(client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4002),
                                     (w.XOR_PEER_ADDRESS, PEER2))) == 508


def test_bandwidth_cap_drops_the_excess():
    server, _, client, relayed = allocated(max_bps=1000)
    client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4001), (w.XOR_PEER_ADDRESS, PEER))
    sent = sum(len(client.send_raw(w.encode_channel_data(0x4001, bytes(300)))) for _ in range(10))
    assert sent == 3
    assert server.stats.bandwidth_dropped == 7
    client.now = 1.0
    assert client.send_raw(w.encode_channel_data(0x4001, bytes(300)))


def test_close_deletes_every_allocation_with_its_counters():
    server, relays, client, _ = allocated()
    client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4001), (w.XOR_PEER_ADDRESS, PEER))
    client.send_raw(w.encode_channel_data(0x4001, b"abc"))
    events(server)
    server.close(1.0)
    [deleted] = events(server)
    assert deleted.reason == "shutdown" and deleted.packets_to_peer == 1 and deleted.bytes_to_peer == 3
    assert not relays.open and server.stats.packets_to_peer == 1


def test_next_deadline_follows_state():
    server, _ = make_server()
    assert server.next_deadline() is None
    client = Client(server)
    client.allocate()
    assert server.next_deadline() is not None
    client.request(w.REFRESH, (w.LIFETIME, 0))
    server.handle_timeout(100.0)
    assert server.next_deadline() is None


def test_stream_listener_pads_channel_data_and_connection_loss_deletes():
    server, relays = make_server()
    tcp = ("192.0.2.1", 3478, "tcp")
    server.stream_listeners.add(tcp)
    client = Client(server, listener=tcp)
    relayed = client.allocate().get(w.XOR_RELAYED_ADDRESS)
    client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4001), (w.XOR_PEER_ADDRESS, PEER))
    server.handle_datagram(Receive(b"abcde", PEER, relayed), 1.0)
    [(data, addr, local)] = drain(server)
    assert data == w.encode_channel_data(0x4001, b"abcde", pad=True) and len(data) == 12 and local == tcp
    events(server)
    server.handle_connection_lost(CLIENT, tcp, 2.0)
    assert not server.allocations and not relays.open
    assert [e.reason for e in events(server)] == ["closed"]


def test_data_indications_draw_their_transaction_ids_from_the_injected_random():
    def one_indication() -> bytes:
        server, _, client, relayed = allocated()
        client.request(w.CREATE_PERMISSION, (w.XOR_PEER_ADDRESS, PEER))
        server.handle_datagram(Receive(b"world", PEER, relayed), 1.0)
        [(data, _, _)] = drain(server)
        return data

    assert one_indication() == one_indication()  # the same seed replays the same bytes


def test_client_stun_fast_lane_answers_as_handle_datagram_does():
    """``handle_client_stun`` (the compiled data path's way in for what a client sends a UDP listener) does
    what ``handle_datagram(Receive(...))`` does: the same bytes out, events and counters, for requests and for
    what is not a request (ChannelData on a channel, a bad fingerprint, garbage, an empty datagram)."""
    import dataclasses

    reference, _ = make_server()
    sent: list[tuple[bytes, tuple, tuple]] = []
    handle = reference.handle_datagram

    def recording(datagram, now):
        sent.append((datagram.data, datagram.source, datagram.destination))
        handle(datagram, now)

    reference.handle_datagram = recording
    client = Client(reference)
    assert error_code(client.allocate()) is None
    assert error_code(client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4000), (w.XOR_PEER_ADDRESS, PEER))) is None
    client.send_raw(w.encode_channel_data(0x4000, b"to the peer"))
    assert error_code(client.request(w.REFRESH, (w.LIFETIME, 600))) is None
    binding = Message(BINDING, MessageClass.REQUEST).encode(fingerprint=True)
    for data in (binding[:-1] + bytes([binding[-1] ^ 1]), b"\x00\x01\x00", b"", b"\x17\xfe\xfd", binding):
        client.send_raw(data)
    assert error_code(client.request(w.REFRESH, (w.LIFETIME, 0))) is None
    assert len(sent) == 11

    general, _ = make_server()  # the same datagrams again, to two fresh servers (the same seeded nonces)
    fast, _ = make_server()
    for data, source, listener in sent:
        general.handle_datagram(Receive(data, source, listener), client.now)
        fast.handle_client_stun(data, source, listener, client.now)
        assert drain(fast) == drain(general), data
        assert events(fast) == events(general)
    assert dataclasses.asdict(fast.stats) == dataclasses.asdict(general.stats)
    assert (fast.stats.parse_errors, fast.stats.requests, fast.stats.packets_to_peer) == (4, 6, 1)
