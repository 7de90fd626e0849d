"""The call server's side of the transcoding workers' links (``netcore-sfu --transcode HOST:PORT``).

Workers (``netcore-transcode --sfu ws://HOST:PORT/``) connect here; the
messages are those of servers.transcode.service. A worker's ``worker.hello``
(name, capacity) makes it one of the core's workers
(:meth:`SfuCore.worker_ready`); the core's ``TranscodeStarted`` and
``TranscodeStopped`` become ``job.start`` and ``job.stop`` to the worker
named; its ``job.offer`` joins it to the room for that job
(``SfuCore.join(..., job=)``) and the answer goes back as ``job.answer``.
A link that closes is a worker gone (:meth:`SfuCore.worker_gone`): its
renditions go, their subscribers fall back to the publisher's stream, and
the jobs are placed on the other workers with room.

Links are authenticated with the call server's ``--service-secret`` (a
bearer token) when it has one.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

from netcore.driver import Driver
from netcore.errors import NetcoreError
from netcore.sfu.core import SfuCore
from netcore.sfu.events import TranscodeStarted, TranscodeStopped
from netcore.transcode.ladder import rendition_to_wire
from servers.servicelink import bearer_authorized, send_message

__all__ = ["WorkerLinks", "HELLO_TIMEOUT"]

HELLO_TIMEOUT = 10.0  # seconds a new link has to say worker.hello


class WorkerLinks:
    """The WebSocket server the workers link to, and the routing of job messages."""

    def __init__(self, core: SfuCore, driver: Driver, secret: str | None, log: Callable[..., None]) -> None:
        self.core, self.driver, self.secret, self.log = core, driver, secret, log
        self.links: dict[str, Any] = {}  # worker name -> its WebSocket
        self.server: Any = None

    async def start(self, host: str, port: int) -> int:
        from websockets.asyncio.server import serve

        self.server = await serve(self._handle, host, port, max_size=2**20)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def on_event(self, event: object) -> None:
        """The core's transcoding events, to the worker concerned."""
        if isinstance(event, TranscodeStarted):
            self._send(event.worker, "job.start", {
                "job_id": event.job_id, "room_id": event.room_id, "publisher": event.publisher, "mid": event.mid,
                "source_codec": event.source_codec, "renditions": [rendition_to_wire(r) for r in event.renditions]})
            self.log("transcode.started", room=event.room_id, job=event.job_id, worker=event.worker)
        elif isinstance(event, TranscodeStopped):
            self._send(event.worker, "job.stop", {"job_id": event.job_id, "reason": event.reason})
            self.log("transcode.stopped", room=event.room_id, job=event.job_id, worker=event.worker,
                     reason=event.reason)

    def _send(self, worker: str, kind: str, payload: dict) -> None:
        send_message(self.links.get(worker), kind, payload)

    async def _handle(self, ws: Any) -> None:
        if not bearer_authorized(ws, self.secret):
            await ws.close(4401, "unauthorized")
            return
        try:
            hello = json.loads(await asyncio.wait_for(ws.recv(), HELLO_TIMEOUT))
            payload = hello.get("payload") or {}
            name, capacity = str(payload["name"]), int(payload["capacity"])
            if hello.get("type") != "worker.hello" or capacity < 0 or not name:
                raise ValueError("worker.hello expected")
        except (asyncio.TimeoutError, ValueError, KeyError, TypeError, AttributeError):
            await ws.close(4400, "worker.hello expected")
            return
        except Exception:  # closed before saying hello
            return
        if name in self.links:
            await ws.close(4409, "a worker of that name is linked")
            return
        self.links[name] = ws
        self.log("worker.linked", worker=name, capacity=capacity)
        self.core.worker_ready(name, capacity, asyncio.get_running_loop().time())
        self.driver.flush()
        try:
            async for text in ws:
                self._on_message(name, text)
        except Exception as exc:  # the link broke: the worker is gone
            self.log("worker.link_error", worker=name, reason=str(exc) or type(exc).__name__)
        finally:
            del self.links[name]
            self.log("worker.gone", worker=name)
            self.core.worker_gone(name, asyncio.get_running_loop().time())
            self.driver.flush()

    def _on_message(self, worker: str, text: str | bytes) -> None:
        try:
            message = json.loads(text)
            kind, payload = message.get("type"), message.get("payload") or {}
            job_id = str(payload["job_id"])
        except (ValueError, AttributeError, KeyError):
            self.log("worker.bad_message", worker=worker)
            return
        if kind == "job.offer":
            self._offer(worker, job_id, payload)
        elif kind == "job.failed":
            self.log("transcode.failed", worker=worker, job=job_id, reason=payload.get("error"))
        else:
            self.log("worker.unknown_message", worker=worker, type=kind)

    def _offer(self, worker: str, job_id: str, payload: dict) -> None:
        room_id = str(payload.get("room_id"))
        participant_id = f"transcode:{worker}:{job_id}"
        try:
            answer, _ = self.core.join(room_id, participant_id, str(payload.get("sdp", "")),
                                       asyncio.get_running_loop().time(), job=job_id)
        except NetcoreError as exc:
            self.log("transcode.refused", worker=worker, job=job_id, reason=str(exc))
            self._send(worker, "job.answer", {"job_id": job_id, "error": str(exc)})
            self.driver.flush()
            return
        self._send(worker, "job.answer", {"job_id": job_id, "sdp": answer})
        self.driver.flush()

