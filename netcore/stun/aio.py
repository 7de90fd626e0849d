"""asyncio adapters for STUN: a client endpoint and a Binding server endpoint."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from netcore.aio import DatagramEndpoint, open_endpoint
from netcore.net import Address, Event
from netcore.stun import attributes as attrs
from netcore.stun.errors import StunTransactionError
from netcore.stun.message import BINDING, Message, MessageClass
from netcore.stun.server import BindingServer
from netcore.stun.transaction import (
    DataReceived,
    StunClient,
    TransactionFailed,
    TransactionSucceeded,
    TransactionTimedOut,
)

__all__ = ["StunClientProtocol", "open_stun_client", "get_mapped_address", "serve_binding"]


class StunClientProtocol(DatagramEndpoint):
    """A datagram endpoint that runs STUN client transactions.

    Datagrams that answer no transaction go to ``on_datagram`` when given.
    """

    core: StunClient

    def __init__(self, client: StunClient | None = None,
                 on_datagram: Callable[[bytes, Address | None], None] | None = None) -> None:
        super().__init__(client or StunClient(), self._on_event)
        self.on_datagram = on_datagram
        self._waiters: dict[bytes, asyncio.Future[Message]] = {}

    async def request(self, message: Message, addr: Address, **options: Any) -> Message:
        """Run one transaction; return the success response or raise StunTransactionError.

        ``options`` are those of :meth:`StunClient.start` (integrity keys,
        ``fingerprint``, ``long_term``, ``reliable``).
        """
        future: asyncio.Future[Message] = self._loop.create_future()
        tid = self.core.start(message, addr, self._loop.time(), **options)
        self._waiters[tid] = future
        self.flush()
        try:
            return await future
        finally:
            self._waiters.pop(tid, None)
            self.core.cancel(tid)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, DataReceived):
            if self.on_datagram is not None:
                self.on_datagram(event.data, event.addr)
            return
        future = self._waiters.get(event.transaction_id)  # type: ignore[attr-defined]
        if future is None or future.done():
            return
        if isinstance(event, TransactionSucceeded):
            future.set_result(event.response)
        elif isinstance(event, TransactionFailed):
            code = event.response.get(attrs.ERROR_CODE)
            future.set_exception(StunTransactionError(f"error response {code}", event.response))
        elif isinstance(event, TransactionTimedOut):
            future.set_exception(StunTransactionError("transaction timed out"))


async def open_stun_client(local_addr: tuple[str, int] = ("0.0.0.0", 0), **client_options: Any) -> StunClientProtocol:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: StunClientProtocol(StunClient(**client_options)), local_addr=local_addr
    )
    return protocol


async def get_mapped_address(server: tuple[str, int], local_addr: tuple[str, int] = ("0.0.0.0", 0),
                             **client_options: Any) -> tuple[str, int]:
    """Ask a STUN server for our server-reflexive address (one Binding transaction)."""
    protocol = await open_stun_client(local_addr, **client_options)
    try:
        request = Message(BINDING, MessageClass.REQUEST)
        response = await protocol.request(request, server, fingerprint=True)
        mapped = response.get(attrs.XOR_MAPPED_ADDRESS) or response.get(attrs.MAPPED_ADDRESS)
        if mapped is None:
            raise StunTransactionError("response carries no mapped address", response)
        return mapped
    finally:
        protocol.close()


async def serve_binding(local_addr: tuple[str, int], software: str | None = "netcore") -> DatagramEndpoint:
    """Start a Binding server on ``local_addr``."""
    return await open_endpoint(BindingServer(software), local_addr)
