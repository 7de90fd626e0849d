"""A relay provider that hands out addresses without sockets, and a small signed-request helper.

Both drive :class:`netcore.turn.server.TurnServer` in tests under a fake
clock; the provider is also what a simulated network would hand the core.
"""

from __future__ import annotations

import itertools

from netcore.net import Receive
from netcore.stun import attributes as sa
from netcore.stun.credentials import long_term_key
from netcore.stun.message import Message, MessageClass
from netcore.turn import wire as w
from netcore.turn.server import ServerConfig, TurnServer

SERVER = ("192.0.2.1", 3478)
CLIENT = ("198.51.100.7", 40000)
PEER = ("203.0.113.5", 5000)


class FakeRelays:
    """Relayed addresses from a fixed pool, per family; no sockets."""

    def __init__(self, ports: range = range(50000, 50100), families: frozenset[int] = frozenset({1, 2})) -> None:
        self.families = families
        self.ports = ports
        self.open: set[tuple[str, int]] = set()
        self.hosts = {1: "192.0.2.1", 2: "2001:db8::1"}

    def open_relay(self, family, *, transport=17, even_port=False, dont_fragment=False, port=None):
        host = self.hosts[family]
        candidates = [port] if port is not None else self.ports
        for p in candidates:
            if p not in self.ports or (even_port and p & 1) or (host, p) in self.open:
                continue
            self.open.add((host, p))
            return (host, p)
        return None

    def close_relay(self, relayed):
        self.open.discard(relayed)


def turn_request(method: int, *attributes: tuple[int, object],
                 credentials: tuple[str, str, str] | None = None) -> Message:
    """A request with ``attributes`` in order; with ``credentials`` (username, realm, nonce) also
    USERNAME, REALM and NONCE, to be encoded with the long-term key (RFC 8489 section 9.2.4)."""
    message = Message(method, MessageClass.REQUEST)
    for attr_type, value in attributes:
        message.add(attr_type, value)
    if credentials is not None:
        username, realm, nonce = credentials
        message.add(sa.USERNAME, username).add(sa.REALM, realm).add(sa.NONCE, nonce)
    return message


def seeded_random():
    counter = itertools.count()
    return lambda n: bytes((next(counter) + i) & 0xFF for i in range(n))


def make_server(**options) -> tuple[TurnServer, FakeRelays]:
    relays = options.pop("relays", None) or FakeRelays()
    options.setdefault("users", {"alice": "secret", "bob": "hunter2"})
    options.setdefault("realm", "example.org")
    server = TurnServer(ServerConfig(**options), relays, random=seeded_random(), wallclock_offset=1_700_000_000.0)
    return server, relays


class Client:
    """Builds requests the way a TURN client does, and reads the server's answers."""

    def __init__(self, server: TurnServer, addr=CLIENT, username="alice", password="secret",
                 listener=SERVER, sha256=False) -> None:
        self.server = server
        self.addr = addr
        self.username = username
        self.password = password
        self.listener = listener
        self.sha256 = sha256
        self.nonce: str | None = None
        self.realm: str | None = None
        self.now = 0.0

    @property
    def key(self) -> bytes:
        algorithm = sa.ALGORITHM_SHA256 if self.sha256 else sa.ALGORITHM_MD5
        return long_term_key(self.username, self.realm or self.server.config.realm, self.password, algorithm)

    def send_raw(self, data: bytes, now: float | None = None) -> list[tuple[bytes, tuple, tuple]]:
        self.server.handle_datagram(Receive(data, self.addr, self.listener), self.now if now is None else now)
        return drain(self.server)

    def request(self, method: int, *attributes: tuple[int, object], signed: bool = True,
                fingerprint: bool = True) -> Message | None:
        """Send one request (learning the nonce from a 401/438 first); the answer, parsed."""
        for _ in range(3):
            credentials = (self.username, self.realm, self.nonce) if signed and self.nonce is not None else None
            message = turn_request(method, *attributes, credentials=credentials)
            if not signed:
                return self._answer(message.encode(fingerprint=fingerprint))
            if self.nonce is None:
                answer = self._answer(message.encode(fingerprint=fingerprint))
                if answer is None or answer.message_class != MessageClass.ERROR or answer.get(sa.ERROR_CODE)[0] != 401:
                    return answer
                self.nonce, self.realm = answer.get(sa.NONCE), answer.get(sa.REALM)
                continue
            if self.sha256:
                message.add(sa.PASSWORD_ALGORITHM, (sa.ALGORITHM_SHA256, b""))
                message.add(sa.PASSWORD_ALGORITHMS, ((sa.ALGORITHM_SHA256, b""), (sa.ALGORITHM_MD5, b"")))
                data = message.encode(integrity_sha256_key=self.key, fingerprint=fingerprint)
            else:
                data = message.encode(self.key, fingerprint=fingerprint)
            answer = self._answer(data)
            if answer is not None and answer.message_class == MessageClass.ERROR and \
                    answer.get(sa.ERROR_CODE)[0] == 438:
                self.nonce = answer.get(sa.NONCE)
                continue
            return answer
        return answer

    def _answer(self, data: bytes) -> Message | None:
        out = self.send_raw(data)
        answers = [Message.parse(d) for d, addr, local in out if addr == self.addr]
        assert len(answers) <= 1
        return answers[0] if answers else None

    def allocate(self, *attributes, transport: int = w.TRANSPORT_UDP) -> Message:
        return self.request(w.ALLOCATE, (w.REQUESTED_TRANSPORT, transport), *attributes)


def drain(server: TurnServer) -> list[tuple[bytes, tuple, tuple]]:
    out = []
    while (item := server.poll_transmit()) is not None:
        out.append((item.data, item.destination, item.source))
    return out


def events(server: TurnServer) -> list[object]:
    out = []
    while (event := server.poll_event()) is not None:
        out.append(event)
    return out


def error_code(message: Message) -> int | None:
    if message.message_class != MessageClass.ERROR:
        return None
    return message.get(sa.ERROR_CODE)[0]
