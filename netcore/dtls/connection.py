"""The DTLS 1.2 connection core, client or server (RFC 6347, RFC 5246, RFC 5764).

Sans-IO, on the contract of :mod:`netcore.net`:
:meth:`DtlsConnection.handle_datagram` takes a :class:`~netcore.net.Receive`
and the time, :meth:`DtlsConnection.handle_timeout` the time; datagrams to
send come out of :meth:`poll_transmit` as :class:`~netcore.net.Transmit`
with both addresses ``None`` (one peer, over the path of the core beneath,
ICE), events (application data too, as :class:`DataReceived`) out of
:meth:`poll_event`, and :meth:`next_deadline` says when to call
``handle_timeout`` next.

The full handshake (RFC 6347 section 4.2.4 flights), with a certificate
from both sides as WebRTC requires::

    client                                   server
    1  ClientHello                  -->
    2                               <--  HelloVerifyRequest   (optional cookie)
    3  ClientHello (+cookie)        -->
    4                               <--  ServerHello, Certificate,
                                         ServerKeyExchange, CertificateRequest,
                                         ServerHelloDone
    5  Certificate, ClientKeyExchange,
       CertificateVerify, [CCS], Finished -->
    6                               <--  [CCS], Finished

Each side retransmits its last flight when the timer fires (1 s, doubling,
capped) or when it sees the peer's previous flight again.
"""

from __future__ import annotations

import datetime
import enum
import hmac
import os
from collections import deque
from typing import Callable, Sequence

from netcore.errors import UsageError
from netcore.net import Receive, Transmit

from . import handshake as hs
from .certificate import DtlsCertificate, fingerprint, peer_public_key
from .cookie import HelloPrefix, cookie_valid, hello_verify_request
from .errors import DtlsParseError, HandshakeError
from .events import AlertReceived, ConnectionClosed, DataReceived, DtlsEvent, HandshakeCompleted, HandshakeFailed
from .flight import FlightItem, FlightTimer, Reassembler, flight_datagrams
from .handshake import ExtensionType, HandshakeType
from .prf import export_keying_material, extended_master_secret, key_block, master_secret, transcript_hash, verify_data
from .protection import RecordProtection
from .record import DTLS_1_2, AlertDescription, AlertLevel, ContentType, Record, decode_alert, encode_alert
from .record import iter_records
from .recordlayer import DtlsStats, RecordLayer
from .suites import (
    DEFAULT_CIPHER_SUITES,
    DEFAULT_GROUPS,
    DEFAULT_SRTP_PROFILES,
    SIGNATURE_SCHEMES,
    SUITES,
    CipherSuite,
    KeyShare,
    NamedGroup,
    SignatureScheme,
    SrtpProfile,
    choose_parameters,
    preferred_scheme,
)
from .suites import sign as sign_with
from .suites import verify as verify_with

__all__ = ["DtlsConnection", "State", "DtlsStats"]


TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF
# RFC 5246 section 7.4.4 ClientCertificateType
_RSA_SIGN, _ECDSA_SIGN = 1, 64
MAX_PENDING_EVENTS = 1024
# The extensions we offer, so the only ones a ServerHello may carry (RFC 5246 section 7.4.1.4).
_CLIENT_EXTENSIONS = frozenset({
    ExtensionType.supported_groups, ExtensionType.ec_point_formats, ExtensionType.signature_algorithms,
    ExtensionType.extended_master_secret, ExtensionType.renegotiation_info, ExtensionType.use_srtp,
})
MAX_EARLY_RECORDS = 16  # authenticated application data held until our handshake ends


class State(enum.Enum):
    CLIENT_START = "client start"
    CLIENT_WAIT_SERVER_HELLO = "client wait ServerHello"
    CLIENT_WAIT_CERTIFICATE = "client wait Certificate"
    CLIENT_WAIT_SERVER_KEY_EXCHANGE = "client wait ServerKeyExchange"
    CLIENT_WAIT_CERTIFICATE_REQUEST = "client wait CertificateRequest or ServerHelloDone"
    CLIENT_WAIT_SERVER_HELLO_DONE = "client wait ServerHelloDone"
    CLIENT_WAIT_FINISHED = "client wait Finished"
    SERVER_WAIT_CLIENT_HELLO = "server wait ClientHello"
    SERVER_WAIT_CERTIFICATE = "server wait Certificate"
    SERVER_WAIT_CLIENT_KEY_EXCHANGE = "server wait ClientKeyExchange"
    SERVER_WAIT_CERTIFICATE_VERIFY = "server wait CertificateVerify"
    SERVER_WAIT_FINISHED = "server wait Finished"
    CONNECTED = "connected"
    CLOSED = "closed"
    FAILED = "failed"


# The transition table: in each state, which handshake message is expected
# and which method handles it.  Anything else is an unexpected_message.
_TRANSITIONS: dict[State, dict[int, str]] = {
    State.CLIENT_WAIT_SERVER_HELLO: {
        HandshakeType.hello_verify_request: "_client_hello_verify_request",
        HandshakeType.server_hello: "_client_server_hello",
    },
    State.CLIENT_WAIT_CERTIFICATE: {HandshakeType.certificate: "_client_certificate"},
    State.CLIENT_WAIT_SERVER_KEY_EXCHANGE: {HandshakeType.server_key_exchange: "_client_server_key_exchange"},
    State.CLIENT_WAIT_CERTIFICATE_REQUEST: {
        HandshakeType.certificate_request: "_client_certificate_request",
        HandshakeType.server_hello_done: "_client_server_hello_done",
    },
    State.CLIENT_WAIT_SERVER_HELLO_DONE: {HandshakeType.server_hello_done: "_client_server_hello_done"},
    State.CLIENT_WAIT_FINISHED: {HandshakeType.finished: "_client_finished"},
    State.SERVER_WAIT_CLIENT_HELLO: {HandshakeType.client_hello: "_server_client_hello"},
    State.SERVER_WAIT_CERTIFICATE: {HandshakeType.certificate: "_server_certificate"},
    State.SERVER_WAIT_CLIENT_KEY_EXCHANGE: {HandshakeType.client_key_exchange: "_server_client_key_exchange"},
    State.SERVER_WAIT_CERTIFICATE_VERIFY: {HandshakeType.certificate_verify: "_server_certificate_verify"},
    State.SERVER_WAIT_FINISHED: {HandshakeType.finished: "_server_finished"},
}


class DtlsConnection:
    """One DTLS 1.2 association with one peer, in the client or the server role."""

    def __init__(
        self,
        is_client: bool,
        certificate: DtlsCertificate,
        *,
        remote_fingerprints: Sequence[tuple[str, str]] | None = None,
        srtp_profiles: Sequence[int] = DEFAULT_SRTP_PROFILES,
        cipher_suites: Sequence[int] = DEFAULT_CIPHER_SUITES,
        groups: Sequence[int] = DEFAULT_GROUPS,
        signature_schemes: Sequence[int] = SIGNATURE_SCHEMES,
        mtu: int = 1200,
        require_client_certificate: bool = True,
        require_extended_master_secret: bool = True,
        cookie_secret: bytes | None = None,
        certificate_time: datetime.datetime | None = None,
        client_id: bytes = b"",
        initial_timeout: float = 1.0,
        max_timeout: float = 60.0,
        max_retransmissions: int = 10,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        """Configure one endpoint; a client then calls :meth:`connect`.

        ``remote_fingerprints``: ``(algorithm, "AB:CD:...")`` pairs from the
        remote description; the peer's certificate must match one, else the
        handshake fails with bad_certificate.  ``None`` accepts any certificate
        and leaves the check to the application (the fingerprint is in
        :class:`HandshakeCompleted`).  ``cookie_secret``/``client_id``: a server
        answers a ClientHello without a valid cookie with a HelloVerifyRequest.
        ``certificate_time``: if given, the peer certificate must be valid then.
        ``mtu``: the largest datagram the flights are cut to (RFC 6347 section
        4.1.1.1).  ``random``: the source of the hello randoms.
        """
        if not set(cipher_suites) <= SUITES.keys() or not cipher_suites:
            raise UsageError(f"cipher suites must be among {sorted(SUITES)}")
        if not set(groups) <= set(NamedGroup) or not groups:
            raise UsageError(f"groups must be among {list(NamedGroup)}")
        if not set(signature_schemes) <= set(SignatureScheme) or not signature_schemes:
            raise UsageError(f"signature schemes must be among {list(SignatureScheme)}")
        if not set(srtp_profiles) <= set(SrtpProfile):
            raise UsageError(f"SRTP profiles must be among {list(SrtpProfile)}")
        if not 200 <= mtu <= 65535:
            raise UsageError("mtu must be between 200 and 65535")
        self.is_client = is_client
        self.certificate = certificate
        self.remote_fingerprints = list(remote_fingerprints) if remote_fingerprints else None
        self.srtp_profiles = list(srtp_profiles)
        self.cipher_suites = list(cipher_suites)
        self.groups = list(groups)
        self.signature_schemes = list(signature_schemes)
        self.mtu = mtu
        self.require_client_certificate = require_client_certificate
        self.require_extended_master_secret = require_extended_master_secret
        self.cookie_secret = cookie_secret
        self.certificate_time = certificate_time
        self.client_id = client_id
        self._random = random
        self.stats = DtlsStats()

        self.state = State.CLIENT_START if is_client else State.SERVER_WAIT_CLIENT_HELLO
        self._transmits: deque[bytes] = deque()
        self._events: deque = deque()

        self._records = RecordLayer(self.stats)

        # handshake
        self._reassembler = Reassembler()
        self._send_seq = 0
        self._transcript: list[bytes] = []
        self._flight: list[FlightItem] = []
        self._peer_flight_last_seq: int | None = None
        self._timer = FlightTimer(initial_timeout, max_timeout, max_retransmissions)

        self.client_random = b""
        self.server_random = b""
        self.cipher_suite: int | None = None
        self.srtp_profile: int | None = None
        self.group: int | None = None  # the ECDHE group agreed
        self.signature_scheme: int | None = None  # the one signing ServerKeyExchange
        self.extended_master_secret = False
        self.peer_certificate: bytes | None = None
        self._peer_public_key = None
        self._key_share: KeyShare | None = None
        self._pre_master = b""
        self._master = b""
        self._cookie = b""
        self._certificate_requested = False
        self._early_data: list[bytes] = []
        self._peer_schemes: list[int] = []

    # ---- public API -------------------------------------------------------

    def connect(self, now: float) -> None:
        """Client: send the first ClientHello and start the timer."""
        if self.state is not State.CLIENT_START:
            raise UsageError("connect() is for a client that has not started")
        self.client_random = self._random(32)
        self.state = State.CLIENT_WAIT_SERVER_HELLO
        self._send_client_hello(now)

    def handle_datagram(self, datagram: Receive, now: float) -> None:
        """Process one received datagram; bad input is counted and dropped."""
        self.stats.datagrams_received += 1
        if self.state in (State.CLOSED, State.FAILED):
            return
        try:
            for record in iter_records(datagram.data):
                self._handle_record(record, now)
                if self.state in (State.CLOSED, State.FAILED):
                    return
        except HandshakeError as exc:  # first: it is a DtlsParseError that ends the handshake
            self._fail(exc.alert, exc.reason)
        except DtlsParseError:
            self.stats.parse_errors += 1

    def handle_timeout(self, now: float) -> None:
        """Retransmit the last flight if its timer expired (RFC 6347 section 4.2.4.1)."""
        if not self._timer.due(now):
            return
        if self._timer.back_off(now):
            self._transmit_flight()
        else:
            self._fail(None, "handshake timed out")

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` is due (the flight timer), or None."""
        return self._timer.deadline

    def poll_transmit(self) -> Transmit | None:
        """The next datagram for the peer; no addresses, the path beneath knows them."""
        return Transmit(self._transmits.popleft()) if self._transmits else None

    def poll_event(self) -> DtlsEvent | None:
        """The next event, oldest first."""
        return self._events.popleft() if self._events else None

    def send(self, data: bytes, now: float) -> None:
        """Send application data in one record (one datagram)."""
        if self.state is not State.CONNECTED:
            raise UsageError("DTLS connection is not established")
        if len(data) > 1 << 14:
            raise UsageError("application data larger than one record (2^14 bytes)")
        self._transmits.append(self._records.seal(ContentType.APPLICATION_DATA, data))

    def close(self, now: float) -> None:
        """Send close_notify (RFC 5246 section 7.2.1) and stop."""
        if self.state is State.CONNECTED:
            self._send_alert(AlertLevel.WARNING, AlertDescription.close_notify)
        if self.state not in (State.CLOSED, State.FAILED):
            self.state = State.CLOSED
            self._timer.stop()
            self._push_event(ConnectionClosed("closed locally"))

    def export_keying_material(self, label: bytes, length: int, context: bytes | None = None) -> bytes:
        """RFC 5705 keying material, e.g. ``b"EXTRACTOR-dtls_srtp"`` for DTLS-SRTP."""
        if not self._master or self.state is not State.CONNECTED:
            raise UsageError("keying material is exported after the handshake")
        return export_keying_material(
            self._master, self.client_random, self.server_random, label, length, context
        )

    @property
    def local_fingerprint(self) -> str:
        return self.certificate.fingerprint()

    # ---- records in -----------------------------------------------------------

    def _handle_record(self, record: Record, now: float) -> None:
        payload = self._records.open(record)
        if payload is None:
            return  # unknown epoch, replayed or forged: counted by the record layer
        epoch = record.epoch
        content_type = record.content_type
        if content_type == ContentType.HANDSHAKE:
            self._handle_handshake_record(epoch, payload, now)
        elif content_type == ContentType.APPLICATION_DATA:
            if self.state is State.CONNECTED and epoch > 0:
                self._push_event(DataReceived(payload))
            elif epoch > 0 and len(self._early_data) < MAX_EARLY_RECORDS:
                # The server may send data right after its Finished, and the
                # network may deliver it first: keep a few until we are done.
                self._early_data.append(payload)
            else:
                self.stats.unexpected_records += 1
        elif content_type == ContentType.CHANGE_CIPHER_SPEC:
            self._handle_change_cipher_spec(payload)
        elif content_type == ContentType.ALERT:
            if epoch < self._records.read_epoch:
                self.stats.unexpected_records += 1  # unauthenticated once keys exist
            else:
                self._handle_alert(payload)
        else:
            self.stats.unexpected_records += 1

    def _handle_change_cipher_spec(self, payload: bytes) -> None:
        if payload != b"\x01":
            raise DtlsParseError("bad ChangeCipherSpec")
        if self._records.read_epoch > 0 or not self._records.change_read_epoch():
            self.stats.unexpected_records += 1  # early (keys not yet derived) or repeated

    def _handle_alert(self, payload: bytes) -> None:
        level, description = decode_alert(payload)
        self._push_event(AlertReceived(level, description))
        if description == AlertDescription.close_notify:
            if self.state is State.CONNECTED:
                self._send_alert(AlertLevel.WARNING, AlertDescription.close_notify)
            self._terminate(State.CLOSED, "close_notify received", description)
        elif level == AlertLevel.FATAL:
            self._terminate(State.FAILED, f"fatal alert {description} received", description)

    def _send_alert(self, level: int, description: int) -> None:
        self._transmits.append(self._records.seal(ContentType.ALERT, encode_alert(level, description)))

    def _terminate(self, state: State, reason: str, alert: int | None) -> None:
        handshaking = self.state is not State.CONNECTED
        self.state = state
        self._timer.stop()
        if handshaking and state is State.FAILED:
            self._push_event(HandshakeFailed(reason, alert))
        else:
            self._push_event(ConnectionClosed(reason))

    def _fail(self, alert: int | None, reason: str) -> None:
        if alert is not None:
            self._send_alert(AlertLevel.FATAL, alert)
        self._terminate(State.FAILED, reason, alert)

    def _push_event(self, event: DtlsEvent) -> None:
        if len(self._events) < MAX_PENDING_EVENTS:
            self._events.append(event)

    # ---- handshake messages in ---------------------------------------------

    def _handle_handshake_record(self, epoch: int, payload: bytes, now: float) -> None:
        for header, data in hs.iter_fragments(payload):
            is_finished = header.msg_type == HandshakeType.finished
            if is_finished != (epoch > 0):
                # Finished is the only handshake message under the new keys
                # (no renegotiation), and it is never sent in plaintext.
                self.stats.unexpected_records += 1
                continue
            if (
                self.state is State.SERVER_WAIT_CLIENT_HELLO
                and header.msg_type == HandshakeType.client_hello
                and header.message_seq != self._reassembler.next_seq
            ):
                # The first ClientHello we take may be the one answering a
                # stateless HelloVerifyRequest (message_seq 1).
                self._reassembler.reset(header.message_seq)
            if not self._reassembler.add(header, data):
                self._handle_old_message(header.message_seq)
        self._process_messages(now)

    def _handle_old_message(self, message_seq: int) -> None:
        """A message we already took: the peer's retransmission, a duplicate or a replay."""
        if message_seq == self._peer_flight_last_seq and self._flight:
            self.stats.retransmissions += 1  # the peer lost (part of) our last flight
            self._transmit_flight()
        else:
            self.stats.old_messages += 1  # RFC 6347 section 4.2.2: discarded

    def _process_messages(self, now: float) -> None:
        while self.state not in (State.CLOSED, State.FAILED):
            item = self._reassembler.peek()
            if item is None:
                return
            msg_type, message_seq, body = item
            if msg_type == HandshakeType.finished and self._records.read_epoch == 0:
                return  # wait for the ChangeCipherSpec it must follow
            if self.state is State.CONNECTED:
                # RFC 5746: we do not renegotiate; decline politely.
                self._reassembler.advance()
                self._send_alert(AlertLevel.WARNING, AlertDescription.no_renegotiation)
                continue
            handler = _TRANSITIONS.get(self.state, {}).get(msg_type)
            if handler is None:
                raise HandshakeError(
                    AlertDescription.unexpected_message,
                    f"handshake message type {msg_type} in state {self.state.value}",
                )
            try:
                message = hs.decode_message(msg_type, body)
            except DtlsParseError as exc:
                raise HandshakeError(AlertDescription.decode_error, str(exc)) from None
            self._reassembler.advance()
            getattr(self, handler)(message, hs.full_message(msg_type, message_seq, body), now)

    # ---- handshake messages out -------------------------------------------

    def _message(self, msg_type: int, body: bytes, epoch: int = 0) -> FlightItem:
        item = FlightItem(epoch, msg_type, self._send_seq, body)
        self._send_seq += 1
        if msg_type != HandshakeType.hello_verify_request:
            self._transcript.append(hs.full_message(msg_type, item.message_seq, body))
        return item

    def _send_flight(self, flight: list[FlightItem], now: float, final: bool = False) -> None:
        self._flight = flight
        if final:
            self._timer.stop()
        else:
            self._timer.start(now)
        self._transmit_flight()

    def _transmit_flight(self) -> None:
        self._transmits.extend(flight_datagrams(self._flight, self._records, self.mtu))

    # ---- key schedule ---------------------------------------------------------

    def _derive_keys(self) -> None:
        if self.extended_master_secret:
            self._master = extended_master_secret(self._pre_master, transcript_hash(self._transcript))
        else:
            self._master = master_secret(self._pre_master, self.client_random, self.server_random)
        params = SUITES[self.cipher_suite]
        block = key_block(self._master, self.client_random, self.server_random, params.key_block_length)
        client, server = RecordProtection.from_key_block(params.aead, params.key_length, params.iv_length, block)
        mine, theirs = (client, server) if self.is_client else (server, client)
        self._records.install_keys(1, write=mine, read=theirs)

    def _finished_item(self) -> FlightItem:
        data = verify_data(self._master, self.is_client, transcript_hash(self._transcript))
        return self._message(HandshakeType.finished, data, epoch=1)

    def _check_finished(self, message: hs.Finished) -> None:
        expected = verify_data(self._master, not self.is_client, transcript_hash(self._transcript))
        if not hmac.compare_digest(expected, message.verify_data):
            raise HandshakeError(AlertDescription.decrypt_error, "wrong Finished verify_data")

    def _accept_peer_certificate(self, message: hs.Certificate) -> None:
        der = message.certificate_list[0]
        self._peer_public_key = peer_public_key(der, self.remote_fingerprints, self.certificate_time)
        self.peer_certificate = der

    def _complete(self) -> None:
        self.state = State.CONNECTED
        self._push_event(
            HandshakeCompleted(
                cipher_suite=self.cipher_suite,
                srtp_profile=self.srtp_profile,
                peer_certificate=self.peer_certificate or b"",
                peer_fingerprint=fingerprint(self.peer_certificate) if self.peer_certificate else "",
                extended_master_secret=self.extended_master_secret,
            )
        )
        for payload in self._early_data:
            self._push_event(DataReceived(payload))
        self._early_data = []

    # ---- client ----------------------------------------------------------------

    def _send_client_hello(self, now: float) -> None:
        extensions = [
            (ExtensionType.supported_groups, hs.encode_u16_list_ext(self.groups)),
            (ExtensionType.ec_point_formats, b"\x01\x00"),
            (ExtensionType.signature_algorithms, hs.encode_u16_list_ext(self.signature_schemes)),
            (ExtensionType.extended_master_secret, b""),
            (ExtensionType.renegotiation_info, b"\x00"),
        ]
        if self.srtp_profiles:
            extensions.insert(0, (ExtensionType.use_srtp, hs.encode_use_srtp(self.srtp_profiles)))
        hello = hs.ClientHello(
            DTLS_1_2, self.client_random, b"", self._cookie, self.cipher_suites, b"\x00", extensions
        )
        self._transcript = []
        self._send_flight([self._message(HandshakeType.client_hello, hello.encode())], now)

    def _client_hello_verify_request(self, message: hs.HelloVerifyRequest, raw: bytes, now: float) -> None:
        # RFC 6347 section 4.2.1: resend the ClientHello with the cookie; neither
        # the first ClientHello nor the HelloVerifyRequest enters the transcript.
        if len(message.cookie) > 255 or self._cookie:
            raise HandshakeError(AlertDescription.illegal_parameter, "unexpected cookie")
        self._cookie = message.cookie
        self._peer_flight_last_seq = self._reassembler.next_seq - 1
        self._send_client_hello(now)

    def _client_server_hello(self, message: hs.ServerHello, raw: bytes, now: float) -> None:
        if message.server_version != DTLS_1_2:
            raise HandshakeError(AlertDescription.protocol_version, "server did not pick DTLS 1.2")
        if message.cipher_suite not in self.cipher_suites or message.compression_method != 0:
            raise HandshakeError(AlertDescription.illegal_parameter, "cipher suite not offered")
        for ext_type, _ in message.extensions or ():
            if ext_type not in _CLIENT_EXTENSIONS:  # RFC 5246 section 7.4.1.4
                raise HandshakeError(AlertDescription.unsupported_extension, "unsolicited extension")
        srtp = message.extension(ExtensionType.use_srtp)
        if srtp is not None:
            try:
                profiles, mki = hs.decode_use_srtp(srtp)
            except DtlsParseError:
                raise HandshakeError(AlertDescription.decode_error, "bad use_srtp") from None
            # RFC 5764 section 4.1.1: exactly one profile, one we offered.
            if len(profiles) != 1 or profiles[0] not in self.srtp_profiles or mki:
                raise HandshakeError(AlertDescription.illegal_parameter, "bad SRTP profile")
            self.srtp_profile = SrtpProfile(profiles[0])
        renegotiation = message.extension(ExtensionType.renegotiation_info)
        if renegotiation is not None and renegotiation != b"\x00":
            raise HandshakeError(AlertDescription.handshake_failure, "bad renegotiation_info")
        self.extended_master_secret = message.extension(ExtensionType.extended_master_secret) is not None
        if self.require_extended_master_secret and not self.extended_master_secret:
            raise HandshakeError(AlertDescription.handshake_failure, "no extended master secret")
        self.server_random = message.random
        self.cipher_suite = CipherSuite(message.cipher_suite)
        self._transcript.append(raw)
        self.state = State.CLIENT_WAIT_CERTIFICATE

    def _client_certificate(self, message: hs.Certificate, raw: bytes, now: float) -> None:
        if not message.certificate_list:
            raise HandshakeError(AlertDescription.bad_certificate, "server sent no certificate")
        self._accept_peer_certificate(message)
        self._transcript.append(raw)
        self.state = State.CLIENT_WAIT_SERVER_KEY_EXCHANGE

    def _client_server_key_exchange(self, message: hs.ServerKeyExchange, raw: bytes, now: float) -> None:
        if message.named_curve not in self.groups:
            raise HandshakeError(AlertDescription.illegal_parameter, "group not offered")
        if message.signature_scheme not in self.signature_schemes:
            raise HandshakeError(AlertDescription.illegal_parameter, "signature scheme not offered")
        if SUITES[self.cipher_suite].authentication == "ecdsa" and message.signature_scheme != (
            SignatureScheme.ecdsa_secp256r1_sha256
        ):
            raise HandshakeError(AlertDescription.illegal_parameter, "suite needs an ECDSA signature")
        signed = self.client_random + self.server_random + message.params()
        verify_with(self._peer_public_key, message.signature_scheme, message.signature, signed)
        self.group = NamedGroup(message.named_curve)
        self.signature_scheme = SignatureScheme(message.signature_scheme)
        self._key_share = KeyShare(message.named_curve)
        self._pre_master = self._key_share.exchange(message.public)
        self._transcript.append(raw)
        self.state = State.CLIENT_WAIT_CERTIFICATE_REQUEST

    def _client_certificate_request(self, message: hs.CertificateRequest, raw: bytes, now: float) -> None:
        self._certificate_requested = True
        self._peer_schemes = message.signature_schemes
        self._transcript.append(raw)
        self.state = State.CLIENT_WAIT_SERVER_HELLO_DONE

    def _client_server_hello_done(self, message: hs.ServerHelloDone, raw: bytes, now: float) -> None:
        self._transcript.append(raw)
        self._peer_flight_last_seq = self._reassembler.next_seq - 1
        flight = []
        if self._certificate_requested:
            body = hs.Certificate([self.certificate.der]).encode()
            flight.append(self._message(HandshakeType.certificate, body))
        cke = hs.ClientKeyExchange(self._key_share.public_bytes())
        flight.append(self._message(HandshakeType.client_key_exchange, cke.encode()))
        self._derive_keys()  # the session hash ends with ClientKeyExchange (RFC 7627 section 3)
        if self._certificate_requested:
            ours = [scheme for scheme in self.signature_schemes if scheme in self._peer_schemes]
            scheme = preferred_scheme(self.certificate.private_key, ours)
            signature = sign_with(self.certificate.private_key, scheme, b"".join(self._transcript))
            body = hs.CertificateVerify(scheme, signature).encode()
            flight.append(self._message(HandshakeType.certificate_verify, body))
        flight.append(FlightItem(0, None, 0, b""))
        self._records.write_epoch = 1
        flight.append(self._finished_item())
        self.state = State.CLIENT_WAIT_FINISHED
        self._send_flight(flight, now)

    def _client_finished(self, message: hs.Finished, raw: bytes, now: float) -> None:
        self._check_finished(message)
        self._transcript.append(raw)
        self._flight = []
        self._timer.stop()
        self._peer_flight_last_seq = self._reassembler.next_seq - 1
        self._complete()

    # ---- server ----------------------------------------------------------------

    def _server_client_hello(self, message: hs.ClientHello, raw: bytes, now: float) -> None:
        message_seq = self._reassembler.next_seq - 1
        # RFC 6347 section 4.2.1 / RFC 9147: a ClientHello offering DTLS 1.3
        # carries legacy_version 1.2 and supported_versions; we answer 1.2.
        if message.client_version > DTLS_1_2:  # DTLS versions count down
            raise HandshakeError(AlertDescription.protocol_version, "client offers only DTLS 1.0")
        prefix = HelloPrefix(message.client_version, message.random, message.session_id, message.cookie)
        if self.cookie_secret is not None and not cookie_valid(self.cookie_secret, self.client_id, prefix):
            seq = self._records.last_read_seq
            self._transmits.append(hello_verify_request(self.cookie_secret, self.client_id, prefix, message_seq, seq))
            return
        self.client_random = message.random
        ext = message.extension
        params = choose_parameters(
            message, self.cipher_suites, self.groups, self.signature_schemes, self.certificate.private_key
        )
        self.cipher_suite, group, scheme = params
        self.group, self.signature_scheme = group, scheme
        self.extended_master_secret = ext(ExtensionType.extended_master_secret) is not None
        if self.require_extended_master_secret and not self.extended_master_secret:
            raise HandshakeError(AlertDescription.handshake_failure, "no extended master secret")
        extensions: list[tuple[int, bytes]] = []
        srtp = ext(ExtensionType.use_srtp)
        if srtp is not None and self.srtp_profiles:
            try:
                offered, _mki = hs.decode_use_srtp(srtp)
            except DtlsParseError:
                raise HandshakeError(AlertDescription.decode_error, "bad use_srtp") from None
            common = [p for p in self.srtp_profiles if p in offered]
            if common:
                self.srtp_profile = common[0]
                extensions.append((ExtensionType.use_srtp, hs.encode_use_srtp([common[0]])))
        if self.extended_master_secret:
            extensions.append((ExtensionType.extended_master_secret, b""))
        renegotiation = ext(ExtensionType.renegotiation_info)
        if renegotiation is not None or TLS_EMPTY_RENEGOTIATION_INFO_SCSV in message.cipher_suites:
            if renegotiation not in (None, b"\x00"):
                raise HandshakeError(AlertDescription.handshake_failure, "bad renegotiation_info")
            extensions.append((ExtensionType.renegotiation_info, b"\x00"))
        if ext(ExtensionType.ec_point_formats) is not None:
            extensions.append((ExtensionType.ec_point_formats, b"\x01\x00"))

        self.server_random = self._random(32)
        self._transcript = [raw]
        # RFC 6347 section 4.2.2: continue the ClientHello's message and record
        # sequence numbers (a stateless HelloVerifyRequest reused them), as OpenSSL does.
        self._send_seq = message_seq
        self._records.continue_write_sequence(0, self._records.last_read_seq)
        self._peer_flight_last_seq = message_seq
        hello = hs.ServerHello(DTLS_1_2, self.server_random, b"", self.cipher_suite, 0, extensions)
        flight = [self._message(HandshakeType.server_hello, hello.encode())]
        flight.append(self._message(HandshakeType.certificate, hs.Certificate([self.certificate.der]).encode()))
        self._key_share = KeyShare(group)
        ske = hs.ServerKeyExchange(group, self._key_share.public_bytes(), scheme, b"")
        ske.signature = sign_with(
            self.certificate.private_key, scheme, self.client_random + self.server_random + ske.params()
        )
        flight.append(self._message(HandshakeType.server_key_exchange, ske.encode()))
        if self.require_client_certificate:
            request = hs.CertificateRequest(bytes((_ECDSA_SIGN, _RSA_SIGN)), self.signature_schemes)
            flight.append(self._message(HandshakeType.certificate_request, request.encode()))
            self.state = State.SERVER_WAIT_CERTIFICATE
        else:
            self.state = State.SERVER_WAIT_CLIENT_KEY_EXCHANGE
        flight.append(self._message(HandshakeType.server_hello_done, b""))
        self._send_flight(flight, now)

    def _server_certificate(self, message: hs.Certificate, raw: bytes, now: float) -> None:
        if not message.certificate_list:
            if self.require_client_certificate:
                raise HandshakeError(AlertDescription.handshake_failure, "client sent no certificate")
        else:
            self._accept_peer_certificate(message)
        self._transcript.append(raw)
        self.state = State.SERVER_WAIT_CLIENT_KEY_EXCHANGE

    def _server_client_key_exchange(self, message: hs.ClientKeyExchange, raw: bytes, now: float) -> None:
        self._pre_master = self._key_share.exchange(message.public)
        self._transcript.append(raw)
        self._derive_keys()
        self.state = (
            State.SERVER_WAIT_CERTIFICATE_VERIFY if self._peer_public_key is not None else State.SERVER_WAIT_FINISHED
        )

    def _server_certificate_verify(self, message: hs.CertificateVerify, raw: bytes, now: float) -> None:
        if message.signature_scheme not in self.signature_schemes:
            raise HandshakeError(AlertDescription.illegal_parameter, "signature scheme not requested")
        verify_with(self._peer_public_key, message.signature_scheme, message.signature, b"".join(self._transcript))
        self._transcript.append(raw)
        self.state = State.SERVER_WAIT_FINISHED

    def _server_finished(self, message: hs.Finished, raw: bytes, now: float) -> None:
        self._check_finished(message)
        self._transcript.append(raw)
        self._peer_flight_last_seq = self._reassembler.next_seq - 1
        flight = [FlightItem(0, None, 0, b"")]
        self._records.write_epoch = 1
        flight.append(self._finished_item())
        self._send_flight(flight, now, final=True)
        self._complete()
