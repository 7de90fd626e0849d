"""The transcoding worker: its link to the call server, its jobs, its /health and /metrics.

The link is a WebSocket to the call server's ``--transcode`` address, kept
up (servers.servicelink); its JSON messages (``{"v": 1, "type", "payload"}``,
docs/transcode.md):

==================  ==========  ================================================
``worker.hello``    to SFU      ``name``, ``capacity``: sent on every (re)link
``job.start``       from SFU    ``job_id``, ``room_id``, ``source_codec``,
                                ``renditions``: the worker makes a job and offers
``job.offer``       to SFU      ``job_id``, ``sdp``: the job's peer connection
``job.answer``      from SFU    ``job_id``, ``sdp`` (or ``error``)
``job.stop``        from SFU    ``job_id``: nobody needs it, or its source left
==================  ==========  ================================================

A link that drops ends every job (the call server takes the worker for gone
and has moved them); the worker says hello again when it comes back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from netcore.errors import NetcoreError
from netcore.transcode.ladder import rendition_from_wire
from servers.daemon import cancel_and_wait
from servers.servicelink import keep_linked, send_message
from servers.sfu.metrics import serve_http
from servers.transcode.config import Settings
from servers.transcode.job import TranscodeJob
from servers.transcode.metrics import Totals, render_metrics

__all__ = ["TranscodeService", "log_event"]

log = logging.getLogger("netcore.transcode")


def log_event(event: str, **fields: Any) -> None:
    """One structured log line (JSON)."""
    if log.isEnabledFor(logging.INFO):
        log.info(json.dumps({"event": event, **fields}, sort_keys=True, default=str))


class TranscodeService:
    """One worker process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jobs: dict[str, TranscodeJob] = {}
        self.totals = Totals()  # of the jobs that ended
        self.http: asyncio.Server | None = None
        self.started = time.monotonic()
        self._link: Any = None
        self._link_task: asyncio.Task | None = None
        self._closing = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.settings.http is not None:
            self.http = await serve_http(*self.settings.http, lambda: render_metrics(self), self.health)
        self._link_task = loop.create_task(keep_linked(self.settings.sfu or "", self.settings.secret, self._linked,
                                                       self._on_message, log_event, lambda: not self._closing))
        log_event("transcode.started", name=self.settings.name, capacity=self.settings.capacity,
                  sfu=self.settings.sfu, http=list(self.http_address) if self.http else None)

    @property
    def http_address(self) -> tuple[str, int]:
        assert self.http is not None
        return self.http.sockets[0].getsockname()[:2]

    async def close(self) -> None:
        """Every job's peer connection closes (BYE, close_notify), then the link and HTTP."""
        self._closing = True
        for job_id in list(self.jobs):
            await self._stop(job_id, "shutdown")
        await cancel_and_wait(self._link_task)
        if self.http is not None:
            self.http.close()
            await self.http.wait_closed()
        log_event("transcode.stopped")

    def health(self) -> dict:
        return {"status": "ok", "name": self.settings.name, "linked": self._link is not None,
                "jobs": len(self.jobs), "capacity": self.settings.capacity,
                "used": sum(len(j.tracks) for j in self.jobs.values()),
                "uptime": round(time.monotonic() - self.started, 1)}

    # -- the link -------------------------------------------------------------------------

    def _linked(self, ws: Any) -> None:
        self._link = ws
        if ws is None:
            for job_id in list(self.jobs):  # the call server took us for gone: it placed them elsewhere
                asyncio.ensure_future(self._stop(job_id, "unlinked"))
            return
        self._send("worker.hello", {"name": self.settings.name, "capacity": self.settings.capacity})

    def _send(self, kind: str, payload: dict) -> None:
        send_message(self._link, kind, payload)

    def _on_message(self, text: str | bytes) -> None:
        try:
            message = json.loads(text)
            kind, payload = message.get("type"), message.get("payload") or {}
            job_id = str(payload.get("job_id", ""))
        except (ValueError, AttributeError):
            log_event("link.bad_message")
            return
        if kind == "job.start":
            asyncio.ensure_future(self._start(job_id, payload))
        elif kind == "job.answer":
            asyncio.ensure_future(self._answered(job_id, payload))
        elif kind == "job.stop":
            asyncio.ensure_future(self._stop(job_id, str(payload.get("reason", "stopped"))))
        else:
            log_event("link.unknown_message", type=kind)

    # -- jobs -----------------------------------------------------------------------------

    async def _start(self, job_id: str, payload: dict) -> None:
        if job_id in self.jobs:
            await self._stop(job_id, "restarted")
        try:
            renditions = tuple(rendition_from_wire(r) for r in payload.get("renditions") or ())
            job = TranscodeJob(job_id, str(payload.get("source_codec", "VP8")).upper(), renditions, log_event)
        except NetcoreError as exc:
            log_event("job.refused", job=job_id, reason=str(exc))
            self._send("job.failed", {"job_id": job_id, "error": str(exc)})
            return
        self.jobs[job_id] = job
        sdp = await job.offer()
        log_event("job.started", job=job_id, room=payload.get("room_id"),
                  renditions=[r.name for r in renditions])
        self._send("job.offer", {"job_id": job_id, "room_id": payload.get("room_id"), "sdp": sdp})

    async def _answered(self, job_id: str, payload: dict) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            return
        if "sdp" not in payload:
            log_event("job.refused", job=job_id, reason=payload.get("error"))
            await self._stop(job_id, "refused")
            return
        try:
            await job.answered(str(payload["sdp"]))
        except NetcoreError as exc:
            log_event("job.refused", job=job_id, reason=str(exc))
            await self._stop(job_id, "bad_answer")

    async def _stop(self, job_id: str, reason: str) -> None:
        job = self.jobs.pop(job_id, None)
        if job is None:
            return
        await job.close()
        self.totals.add(job.metrics)
        metrics = job.metrics
        log_event("job.stopped", job=job_id, reason=reason, frames_decoded=metrics.frames_decoded,
                  encoded={n: m.frames_encoded for n, m in metrics.renditions.items()},
                  dropped={n: m.frames_dropped for n, m in metrics.renditions.items()})
