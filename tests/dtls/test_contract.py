"""The DTLS core on the contract every core follows (netcore.net, netcore.driver):
datagrams in as Receive, out as Transmit without addresses (one peer, over
the path beneath), events below DtlsEvent, two cores run by Drivers on the
simulated network's virtual clock (a lost flight recovered by the timer),
and hostile input mid-handshake counted and dropped, never raised."""

from __future__ import annotations

from netcore.driver import Driver
from netcore.dtls import handshake as hs
from netcore.dtls import DataReceived, DtlsCertificate, DtlsConnection, DtlsEvent, HandshakeCompleted, State
from netcore.dtls.record import Record, iter_records
from netcore.net import Event, Receive, Transmit
from netcore.testing.simnet import Network

from .peers import drain_events, pair

CLIENT = DtlsCertificate.generate("client")
SERVER = DtlsCertificate.generate("server")


def test_transmits_leave_both_addresses_to_the_path_beneath():
    client, server = pair(CLIENT, SERVER)
    client.connect(0.0)
    transmit = client.poll_transmit()
    assert isinstance(transmit, Transmit)
    assert transmit.destination is None and transmit.source is None
    server.handle_datagram(Receive(transmit.data), 0.0)
    while (transmit := server.poll_transmit()) is not None:
        assert isinstance(transmit, Transmit) and transmit.destination is None


def test_every_event_is_a_dtls_event_and_data_arrives_as_an_event():
    assert issubclass(DtlsEvent, Event)
    client, server = pair(CLIENT, SERVER)
    client.connect(0.0)
    for _ in range(4):
        for src, dst in ((client, server), (server, client)):
            while (transmit := src.poll_transmit()) is not None:
                dst.handle_datagram(Receive(transmit.data), 0.0)
    client.send(b"hello", 0.5)
    server.handle_datagram(Receive(client.poll_transmit().data), 0.5)
    events = drain_events(server)
    assert all(isinstance(event, DtlsEvent) for event in events)
    assert events[-1] == DataReceived(b"hello")


def test_two_cores_under_drivers_recover_a_lost_flight_in_virtual_time():
    network = Network(seed=1)
    client, server = pair(CLIENT, SERVER)
    received: list[Event] = []
    lost = [1]  # the server's first flight is lost once

    def carry(to: Driver, drop: list[int]):
        def send(transmit: Transmit) -> None:
            assert transmit.destination is None
            if drop and drop[0] > 0:
                drop[0] -= 1
                return
            network.call_at(network.time() + 0.02, to.receive, Receive(transmit.data))
        return send

    client_driver = Driver(client, network, send=lambda t: None, on_event=received.append)
    server_driver = Driver(server, network, send=lambda t: None)
    client_driver.send = carry(server_driver, [])
    server_driver.send = carry(client_driver, lost)
    client.connect(network.time())
    client_driver.flush()
    assert network.run(until=10.0, stop=lambda: client.state is State.CONNECTED and server.state is State.CONNECTED)
    assert 1.0 <= network.time() < 1.2  # the client's 1 s timer resent its hello; no sooner
    assert any(isinstance(event, HandshakeCompleted) for event in received)
    server.send(b"over the driver", network.time())
    server_driver.flush()
    network.run(until=network.time() + 1.0)
    assert received[-1] == DataReceived(b"over the driver")
    client_driver.close(), server_driver.close()


def _fragments(datagrams: list[bytes]) -> int:
    return sum(len(list(hs.iter_fragments(r.fragment))) for d in datagrams for r in iter_records(d) if r.epoch == 0)


def test_garbage_and_old_epoch_records_mid_handshake_are_counted_and_dropped():
    client, server = pair(CLIENT, SERVER)
    client.connect(0.0)
    hello = client.poll_transmit().data
    server.handle_datagram(Receive(hello), 0.0)
    server_flight = [t.data for t in iter(server.poll_transmit, None)]
    for data in server_flight:
        client.handle_datagram(Receive(data), 0.1)
    assert client.state is State.CLIENT_WAIT_FINISHED  # epoch 1 keys exist, the server's Finished is due
    # Mid-handshake: a truncated record, a record of a future epoch, a forged one
    # under the new keys; each is counted and dropped, none raises or ends anything.
    client.handle_datagram(Receive(b"\x16\xfe\xfd\x00\x00\x00"), 0.2)
    client.handle_datagram(Receive(Record(22, 0xFEFD, 2, 0, b"\x14" * 40).encode()), 0.2)
    client.handle_datagram(Receive(Record(23, 0xFEFD, 1, 9, bytes(40)).encode()), 0.2)
    assert (client.stats.parse_errors, client.stats.unknown_epoch, client.stats.bad_record_mac) == (1, 1, 1)
    assert client.state is State.CLIENT_WAIT_FINISHED and drain_events(client) == []
    for _ in range(4):
        for src, dst in ((client, server), (server, client)):
            while (transmit := src.poll_transmit()) is not None:
                dst.handle_datagram(Receive(transmit.data), 0.3)
    assert client.state is State.CONNECTED and server.state is State.CONNECTED
    drain_events(client), drain_events(server)
    # After it: epoch-0 records of the finished handshake, replayed, change nothing.
    server.handle_datagram(Receive(hello), 1.0)
    assert server.stats.old_messages == 1
    for data in server_flight:
        client.handle_datagram(Receive(data), 1.0)
    assert client.stats.old_messages == _fragments(server_flight) > 1
    assert server.poll_transmit() is None and client.poll_transmit() is None
    assert drain_events(client) == drain_events(server) == []
    assert client.state is State.CONNECTED and server.state is State.CONNECTED
