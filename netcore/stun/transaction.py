"""STUN client transactions, sans-IO (RFC 8489 section 6.2).

Over UDP a request is sent at 0, RTO, 3 RTO, 7 RTO ... (the interval doubles)
up to Rc = 7 times, and the transaction times out Rm = 16 RTO after the last
send: with the default RTO of 500 ms, sends at 0, 0.5, 1.5, 3.5, 7.5, 15.5 and
31.5 s and a time-out at 39.5 s. Over a reliable transport there is one send
and one time-out, Ti = 39.5 s (section 6.2.2).

The core follows the contract of :mod:`netcore.net`: the caller passes
``now`` to every call and asks :meth:`StunClient.next_deadline` when to call
:meth:`StunClient.handle_timeout`; :class:`~netcore.net.Transmit` s come from
:meth:`StunClient.poll_transmit`, outcomes from :meth:`StunClient.poll_event`.
A datagram that answers no transaction in progress comes back as
:class:`DataReceived`, so a socket shared with other traffic loses nothing.
Cores that own a client (TURN, ICE) feed it parsed messages through
:meth:`StunClient.handle_message` instead, which says whether it matched.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from netcore.errors import UsageError
from netcore.net import Address, Event, Receive, Transmit
from netcore.stun import attributes as attrs
from netcore.stun.errors import StunParseError
from netcore.stun.message import Message, MessageClass

__all__ = [
    "StunClient",
    "TransactionSucceeded",
    "TransactionFailed",
    "TransactionTimedOut",
    "TransactionAnswered",
    "TransactionEvent",
    "StunEvent",
    "DataReceived",
]


@dataclass(frozen=True, slots=True)
class StunEvent(Event):
    """Base of the STUN client's events."""


@dataclass(frozen=True, slots=True)
class TransactionEvent(StunEvent):
    """A transaction ended; the subclass says how."""

    transaction_id: bytes


@dataclass(frozen=True, slots=True)
class TransactionAnswered(TransactionEvent):
    """The server answered from ``addr``; the subclass says whether with success or an error."""

    response: Message
    addr: Address


@dataclass(frozen=True, slots=True)
class TransactionSucceeded(TransactionAnswered):
    """The server answered with a success response."""


@dataclass(frozen=True, slots=True)
class TransactionFailed(TransactionAnswered):
    """The server answered with an error response (``response.get(ERROR_CODE)``)."""


@dataclass(frozen=True, slots=True)
class TransactionTimedOut(TransactionEvent):
    pass


@dataclass(frozen=True, slots=True)
class DataReceived(StunEvent):
    """A datagram that answered no transaction in progress (not STUN, or not ours)."""

    data: bytes
    addr: Address | None


@dataclass(slots=True)
class _Transaction:
    data: bytes
    addr: Address
    deadline: float
    interval: float
    sends_left: int
    key: bytes | None
    key256: bytes | None
    long_term: bool
    rto: float


class StunClient:
    """Runs any number of concurrent client transactions."""

    def __init__(
        self,
        *,
        rto: float = 0.5,
        rc: int = 7,
        rm: int = 16,
        reliable_timeout: float = 39.5,
        max_transactions: int = 4096,
    ) -> None:
        if rto <= 0 or rc < 1 or rm < 1:
            raise UsageError("rto must be positive, rc and rm at least 1")
        self.rto = rto
        self.rc = rc
        self.rm = rm
        self.reliable_timeout = reliable_timeout
        self.max_transactions = max_transactions
        self._pending: dict[bytes, _Transaction] = {}
        self._transmit: deque[Transmit] = deque()
        self._events: deque[StunEvent] = deque()

    # -- inputs -------------------------------------------------------------------

    def start(
        self,
        request: Message,
        addr: Address,
        now: float,
        *,
        integrity_key: bytes | None = None,
        integrity_sha256_key: bytes | None = None,
        fingerprint: bool = False,
        long_term: bool = False,
        reliable: bool = False,
        rto: float | None = None,
    ) -> bytes:
        """Send ``request`` to ``addr``; return its transaction id.

        A response must carry integrity under the same key(s) to be accepted
        (section 9.1.4), except a 401 or 438 to a long-term request, which
        gives the realm and nonce to retry with (section 9.2.5). ``rto``
        overrides the client's RTO for this transaction (ICE paces its
        checks so, RFC 8445 section 14.3).
        """
        if request.message_class != MessageClass.REQUEST:
            raise UsageError("only requests start transactions")
        if len(self._pending) >= self.max_transactions:
            raise UsageError("too many transactions in progress")
        tid = request.transaction_id
        if tid in self._pending:
            raise UsageError("a transaction with this id is already in progress")
        data = request.encode(integrity_key, integrity_sha256_key=integrity_sha256_key, fingerprint=fingerprint)
        rto = self.rto if rto is None else rto
        if reliable:
            transaction = _Transaction(data, addr, now + self.reliable_timeout, 0.0, 0,
                                       integrity_key, integrity_sha256_key, long_term, rto)
        else:
            transaction = _Transaction(data, addr, now + rto, rto, self.rc - 1,
                                       integrity_key, integrity_sha256_key, long_term, rto)
        self._pending[tid] = transaction
        self._transmit.append(Transmit(data, addr))
        return tid

    def cancel(self, transaction_id: bytes) -> None:
        self._pending.pop(transaction_id, None)

    def handle_datagram(self, datagram: Receive, now: float) -> None:
        """Feed a datagram; one that answers no transaction comes back as :class:`DataReceived`."""
        try:
            message = Message.parse(datagram.data)
        except StunParseError:
            message = None
        if message is None or not self.handle_message(message, datagram.source, now):
            self._events.append(DataReceived(datagram.data, datagram.source))

    def handle_message(self, message: Message, addr: Address, now: float) -> bool:
        """Feed an already parsed message; True if it answered a transaction in progress."""
        if message.message_class not in (MessageClass.SUCCESS, MessageClass.ERROR):
            return False
        transaction = self._pending.get(message.transaction_id)
        if transaction is None or not self._authentic(transaction, message):
            return False  # retransmissions go on (section 9.1.4)
        del self._pending[message.transaction_id]
        if message.message_class == MessageClass.SUCCESS:
            self._events.append(TransactionSucceeded(message.transaction_id, message, addr))
        else:
            self._events.append(TransactionFailed(message.transaction_id, message, addr))
        return True

    @staticmethod
    def _authentic(transaction: _Transaction, message: Message) -> bool:
        if message.has_fingerprint and not message.check_fingerprint():
            return False
        if transaction.key is None and transaction.key256 is None:
            return True
        if transaction.long_term and message.message_class == MessageClass.ERROR:
            try:
                code = message.get(attrs.ERROR_CODE)
            except StunParseError:
                return False
            if code is not None and code[0] in (401, 438):
                return True
        if transaction.key256 is not None and message.has_integrity_sha256:
            return message.check_integrity_sha256(transaction.key256)
        if transaction.key is not None:
            return message.check_integrity(transaction.key)
        return False

    def handle_timeout(self, now: float) -> None:
        expired = []
        for tid, transaction in self._pending.items():
            if transaction.deadline > now:
                continue
            if transaction.sends_left > 0:
                transaction.sends_left -= 1
                transaction.interval *= 2
                self._transmit.append(Transmit(transaction.data, transaction.addr))
                # After the last send, wait Rm * RTO (section 6.2.1).
                wait = transaction.interval if transaction.sends_left > 0 else self.rm * transaction.rto
                transaction.deadline = now + wait
            else:
                expired.append(tid)
        for tid in expired:
            del self._pending[tid]
            self._events.append(TransactionTimedOut(tid))

    # -- outputs ------------------------------------------------------------------

    def poll_transmit(self) -> Transmit | None:
        return self._transmit.popleft() if self._transmit else None

    def poll_event(self) -> StunEvent | None:
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        if not self._pending:
            return None
        return min(t.deadline for t in self._pending.values())

    def __len__(self) -> int:
        return len(self._pending)
