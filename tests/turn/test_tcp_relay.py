"""RFC 6062 TCP allocations in the server core: Connect, ConnectionAttempt, ConnectionBind."""

from netcore.stun.message import Message, MessageClass
from netcore.turn import wire as w
from netcore.turn.tcp_relay import ConnectionBound, PeerConnectionClosed, PeerConnectRequested
from tests.turn.sim import CLIENT, PEER, SERVER, Client, drain, error_code, events, make_server

TCP = ("192.0.2.1", 3478, "tcp")
DATA_CLIENT = ("198.51.100.7", 40001)


def tcp_allocation():
    server, relays = make_server()
    server.stream_listeners.add(TCP)
    client = Client(server, listener=TCP)
    answer = client.allocate(transport=w.TRANSPORT_TCP)
    assert answer.message_class == MessageClass.SUCCESS, answer
    events(server)
    return server, client, answer.get(w.XOR_RELAYED_ADDRESS)


def test_tcp_allocation_needs_a_stream_control_connection():
    server, _ = make_server()
    assert error_code(Client(server).allocate(transport=w.TRANSPORT_TCP)) == 400
    server.stream_listeners.add(TCP)
    assert error_code(Client(server, listener=TCP).allocate((w.EVEN_PORT, False), transport=w.TRANSPORT_TCP)) == 400


def test_connect_then_connection_bind_on_a_data_connection():
    server, client, relayed = tcp_allocation()
    assert client.request(w.CONNECT, (w.XOR_PEER_ADDRESS, PEER)) is None  # answered once connected
    [requested] = events(server)
    assert isinstance(requested, PeerConnectRequested) and requested.peer == PEER and requested.relayed == relayed
    server.handle_peer_connected(requested.connection_id, True, 1.0)
    [(data, addr, local)] = drain(server)
    answer = Message.parse(data)
    assert answer.message_class == MessageClass.SUCCESS and answer.check_integrity(client.key)
    assert answer.get(w.CONNECTION_ID) == requested.connection_id and addr == CLIENT
    data_connection = Client(server, addr=DATA_CLIENT, listener=TCP)
    bound = data_connection.request(w.CONNECTION_BIND, (w.CONNECTION_ID, requested.connection_id))
    assert bound.message_class == MessageClass.SUCCESS
    assert events(server) == [ConnectionBound(requested.connection_id, DATA_CLIENT, TCP)]
    # a second bind of the same connection is refused
    again = Client(server, addr=("198.51.100.7", 40002), listener=TCP)
    assert error_code(again.request(w.CONNECTION_BIND, (w.CONNECTION_ID, requested.connection_id))) == 400


def test_connect_refusals():
    server, client, _ = tcp_allocation()
    assert error_code(client.request(w.CONNECT, (w.XOR_PEER_ADDRESS, ("127.0.0.1", 80)))) == 403
    assert error_code(client.request(w.CONNECT)) == 400
    client.request(w.CONNECT, (w.XOR_PEER_ADDRESS, PEER))
    assert error_code(client.request(w.CONNECT, (w.XOR_PEER_ADDRESS, PEER))) == 446
    [requested] = [e for e in events(server) if isinstance(e, PeerConnectRequested)]
    server.handle_peer_connected(requested.connection_id, False, 1.0)
    assert error_code(Message.parse(drain(server)[0][0])) == 447
    udp_server, _ = make_server()
    udp_client = Client(udp_server)
    udp_client.allocate()
    assert error_code(udp_client.request(w.CONNECT, (w.XOR_PEER_ADDRESS, PEER))) == 400


def test_connect_times_out_with_447_after_30_seconds():
    server, client, _ = tcp_allocation()
    client.request(w.CONNECT, (w.XOR_PEER_ADDRESS, PEER))
    [requested] = events(server)
    server.handle_timeout(31.0)
    assert error_code(Message.parse(drain(server)[0][0])) == 447
    assert PeerConnectionClosed(requested.connection_id) in events(server)


def test_connection_attempt_from_a_permitted_peer_and_bind_timeout():
    server, client, relayed = tcp_allocation()
    assert server.handle_peer_connection(relayed, PEER, 1.0) is None  # no permission yet
    client.request(w.CREATE_PERMISSION, (w.XOR_PEER_ADDRESS, PEER))
    connection_id = server.handle_peer_connection(relayed, PEER, 2.0)
    [(data, addr, local)] = drain(server)
    attempt = Message.parse(data)
    assert attempt.method == w.CONNECTION_ATTEMPT and attempt.message_class == MessageClass.INDICATION
    assert attempt.get(w.CONNECTION_ID) == connection_id and attempt.get(w.XOR_PEER_ADDRESS) == PEER
    assert (addr, local) == (CLIENT, TCP)
    server.handle_timeout(33.0)  # never bound
    assert events(server) == [PeerConnectionClosed(connection_id)]
    data_connection = Client(server, addr=DATA_CLIENT, listener=TCP)
    assert error_code(data_connection.request(w.CONNECTION_BIND, (w.CONNECTION_ID, connection_id))) == 400


def test_deleting_a_tcp_allocation_closes_its_connections():
    server, client, relayed = tcp_allocation()
    client.request(w.CREATE_PERMISSION, (w.XOR_PEER_ADDRESS, PEER))
    connection_id = server.handle_peer_connection(relayed, PEER, 1.0)
    events(server)
    server.handle_connection_lost(CLIENT, TCP, 2.0)
    assert PeerConnectionClosed(connection_id) in events(server)
    assert not server.tcp.connections


def test_channel_bind_and_send_are_not_for_tcp_allocations():
    server, client, _ = tcp_allocation()
    assert error_code(client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4000), (w.XOR_PEER_ADDRESS, PEER))) == 400
    client.request(w.CREATE_PERMISSION, (w.XOR_PEER_ADDRESS, PEER))
    send = Message(w.SEND, MessageClass.INDICATION).add(w.XOR_PEER_ADDRESS, PEER).add(w.DATA_ATTR, b"x").encode()
    assert client.send_raw(send) == []


def test_allocations_without_connections_share_one_empty_set_and_a_connection_makes_its_own():
    """RFC 6062 connection ids live on the allocation, but most allocations never have one: they all hold the
    same empty set (216 bytes less per allocation, one object less to free when it ends), and the first
    connection of a TCP allocation gets a set of its own, which it leaves again when the connection closes."""
    server, client, relayed = tcp_allocation()
    udp = Client(server, addr=("198.51.100.9", 40002))
    assert udp.allocate().message_class == MessageClass.SUCCESS
    tcp_allocation_, udp_allocation = server.allocation(CLIENT, TCP), server.allocation(("198.51.100.9", 40002), SERVER)
    assert not tcp_allocation_.connections and tcp_allocation_.connections is udp_allocation.connections
    client.request(w.CREATE_PERMISSION, (w.XOR_PEER_ADDRESS, PEER))
    connection_id = server.handle_peer_connection(relayed, PEER, 1.0)
    assert tcp_allocation_.connections == {connection_id} and not udp_allocation.connections
    server.handle_connection_lost(CLIENT, TCP, 2.0)
    assert PeerConnectionClosed(connection_id) in events(server)
    assert not udp_allocation.connections
