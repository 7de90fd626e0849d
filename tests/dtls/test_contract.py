"""The DTLS core on the contract every core follows (netcore.net, netcore.driver):
datagrams in as Receive, out as Transmit without addresses (one peer, over
the path beneath), events below DtlsEvent, and two cores run by Drivers on
the simulated network's virtual clock, a lost flight recovered by the timer."""

from __future__ import annotations

from netcore.driver import Driver
from netcore.dtls import DataReceived, DtlsCertificate, DtlsConnection, DtlsEvent, HandshakeCompleted, State
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
