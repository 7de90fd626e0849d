"""The DTLS 1.2 record layer state of one connection (RFC 6347 section 4.1).

:class:`RecordLayer` owns what records need between datagrams: the epoch we
write and the one we read, the protection of each epoch in each direction,
the 48-bit write sequence number per epoch and the anti-replay window per
authenticated read epoch.  The handshake above it decides *when* keys
arrive and epochs change; this class decides how a record is sealed, and
whether a received one is opened or dropped (and counts why in the
connection's :class:`DtlsStats`).  The wire format itself is in
:mod:`netcore.dtls.record`, the AEADs in :mod:`netcore.dtls.protection`.
"""

from __future__ import annotations

from netcore.errors import UsageError

from .errors import DtlsParseError
from .protection import RecordProtection
from .record import DTLS_1_2, MAX_SEQUENCE, RECORD_HEADER_SIZE, Record, ReplayWindow, encode_record

__all__ = ["RecordLayer", "DtlsStats"]


class DtlsStats:
    """Counters of what the core dropped, and why."""

    __slots__ = (
        "datagrams_received",
        "parse_errors",
        "unknown_epoch",
        "replayed",
        "bad_record_mac",
        "unexpected_records",
        "retransmissions",
        "old_messages",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def __repr__(self) -> str:
        return "DtlsStats(" + ", ".join(f"{n}={getattr(self, n)}" for n in self.__slots__) + ")"


class RecordLayer:
    """Epochs, their protection, write sequence numbers and replay windows."""

    __slots__ = ("stats", "write_epoch", "read_epoch", "last_read_seq", "_read", "_write", "_write_seq", "_replay")

    def __init__(self, stats: DtlsStats) -> None:
        self.stats = stats
        # Epoch 0 is plaintext both ways; epoch 1 gets keys from the handshake.
        self.write_epoch = 0
        self.read_epoch = 0
        self.last_read_seq = 0  # of the last record accepted, whatever its epoch
        self._read: dict[int, RecordProtection | None] = {0: None}
        self._write: dict[int, RecordProtection | None] = {0: None}
        self._write_seq: dict[int, int] = {0: 0}
        self._replay: dict[int, ReplayWindow] = {}

    # ---- keys and epochs ----------------------------------------------------

    def install_keys(self, epoch: int, write: RecordProtection, read: RecordProtection) -> None:
        """Keys for ``epoch``; writing and reading under it start later, each on its own signal."""
        self._write[epoch], self._write_seq[epoch] = write, 0
        self._read[epoch], self._replay[epoch] = read, ReplayWindow()

    def change_read_epoch(self) -> bool:
        """The peer's ChangeCipherSpec: read the next epoch from now on.

        False (and nothing changes) if its keys do not exist yet or the
        change already happened: an early or repeated ChangeCipherSpec.
        """
        epoch = self.read_epoch + 1
        if epoch not in self._read:
            return False
        self.read_epoch = epoch
        return True

    def continue_write_sequence(self, epoch: int, seq: int) -> None:
        """Never reuse a number the peer saw from us, e.g. in a stateless HelloVerifyRequest."""
        self._write_seq[epoch] = max(self._write_seq[epoch], seq)

    def overhead(self, epoch: int) -> int:
        """Bytes a record of ``epoch`` adds to its payload: header and AEAD."""
        protection = self._write[epoch]
        return RECORD_HEADER_SIZE + (protection.overhead if protection is not None else 0)

    # ---- records out and in ---------------------------------------------------

    def seal(self, content_type: int, payload: bytes, epoch: int | None = None) -> bytes:
        """One record of ``payload`` under ``epoch`` (the current write epoch by default)."""
        if epoch is None:
            epoch = self.write_epoch
        seq = self._write_seq[epoch]
        if seq > MAX_SEQUENCE:  # RFC 6347 section 4.1: never wrap the 48-bit sequence
            raise UsageError("DTLS record sequence numbers exhausted for this epoch")
        self._write_seq[epoch] = seq + 1
        protection = self._write[epoch]
        if protection is not None:
            payload = protection.seal(content_type, DTLS_1_2, epoch, seq, payload)
        return encode_record(content_type, DTLS_1_2, epoch, seq, payload)

    def open(self, record: Record) -> bytes | None:
        """The plaintext of ``record``, or None when it is dropped (and counted)."""
        epoch = record.epoch
        if epoch not in self._read:
            self.stats.unknown_epoch += 1  # RFC 6347 section 4.1: may discard
            return None
        seq = record.sequence_number
        protection = self._read[epoch]
        payload = record.fragment
        if protection is not None:
            # RFC 6347 section 4.1.2.6.  Epoch 0 is unauthenticated: a spoofed
            # record could push its window ahead and block the real handshake,
            # so there the handshake's message_seq does the deduplication.
            window = self._replay[epoch]
            if window.is_replay(seq):
                self.stats.replayed += 1
                return None
            try:
                payload = protection.open(record.content_type, record.version, epoch, seq, payload)
            except DtlsParseError:
                self.stats.bad_record_mac += 1  # RFC 6347 section 4.1.2.7: silently discard
                return None
            window.mark(seq)
        self.last_read_seq = seq
        return payload
