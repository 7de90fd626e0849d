"""``netcore-record worker``: finished rooms under the recordings root into files, and the notification.

::

    netcore-record worker --root sfu-data/recordings --out recordings \\
        --signal ws://127.0.0.1:8080/v1/service --service-secret ... [--stale 30] [--poll 1] [--once]

The call server journals each recorded room into a directory of the root
(``ROOM-YYYYMMDDTHHMMSSZ/manifest.json`` and its tracks, docs/recording.md).
The worker watches the root (a scan every ``--poll`` seconds; with
``--redis URL`` it also pops the directories the call server announces on
the list ``nc:recordings`` when a recording ends, at once and wherever they
are, so a worker on another machine with the journals on shared storage
needs no scan) and takes a room when

* its manifest has ``ended_at`` (the recording stopped or the room ended), or
* nothing in it was written for ``--stale`` seconds (its call server died:
  everything written before is read, the torn last record dropped).

For each it runs :func:`~netcore.record.creator.create_recording`, the same
function as the command, and writes ``.done`` into the room's directory
(the sidecar's location and the files, atomically), so a room is processed
once however often the worker restarts; a journal that cannot be read gets
``.failed`` with the reason and is left alone.  A lock (``flock`` on
``.lock``) keeps two workers off one room; the kernel releases it when a
worker dies.

Then it tells netcore-signal over the service link (``?role=recorder``):
``recording.ready`` with the room, the sidecar's location, the files (whose
each is, its span in room time, its tracks), when it started, its duration,
the composite and the users who took part (the manifest's participant
names); signaling tells them now or at their next login and keeps it in
their list of recordings (docs/signaling.md, "Recordings").  A notification not yet acknowledged is
kept in ``.done`` (``notified: false``) and sent again when the link is up.
``--webhook URL`` also POSTs the sidecar JSON, signed: header
``X-Netcore-Signature: sha256=HEX``, HMAC-SHA256 of the body with
``--webhook-secret``; retried with back-off (1, 2, 4 ... 60 s) until a 2xx.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import hmac
import json
import logging
import os
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from netcore.errors import NetcoreError
from netcore.record.creator import create_recording
from netcore.record.manifest import MANIFEST_NAME, Manifest
from netcore.record.store import DirectoryStore, Store
from servers.servicelink import RECONNECT_DELAY, keep_linked

__all__ = ["Worker", "WorkerSettings", "room_state", "sign", "DONE", "FAILED"]

log = logging.getLogger("netcore.record")
DONE = ".done"
FAILED = ".failed"
LOCK = ".lock"
RECORDINGS_LIST = "nc:recordings"  # what netcore-sfu --recordings-redis LPUSHes: {"room_id", "directory"}
WEBHOOK_DELAYS = (1.0, 60.0)  # first and largest wait between webhook attempts


def log_event(event: str, **fields: Any) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info(json.dumps({"event": event, **fields}, sort_keys=True, default=str))


def ready_details(sidecar: dict | None) -> dict:
    """What recording.ready tells besides the files' places, from the sidecar: when the recording started,
    how long it is, the composite, and per file whose it is, its span in room time and its tracks (so
    signaling can list recordings without reading sidecars)."""
    if not sidecar:
        return {}
    names = {p["participant"]: p["name"] for p in sidecar.get("participants", [])}
    composite = sidecar.get("composite")
    return {
        "started": sidecar["started"], "duration": sidecar["duration"],
        "composite": {"name": composite["name"], "location": composite["location"]} if composite else None,
        "files": [{"participant": f["participant"], "user": names.get(f["participant"], ""), "name": f["name"],
                   "location": f["location"], "start": f["start"], "end": f["end"],
                   "tracks": [{"kind": t["kind"], "codec": t["codec"]} for t in f["tracks"]]}
                  for f in sidecar.get("files", [])],
    }


def sign(secret: str, body: bytes) -> str:
    """The webhook's signature header value: ``sha256=`` and the HMAC-SHA256 of the body, in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class WorkerSettings:
    root: Path
    out: Path
    signal: str | None = None
    service_secret: str | None = None
    stale: float = 30.0  # seconds without a write before a room without ended_at is taken
    poll: float = 1.0
    composite: bool = False
    webhook: str | None = None
    webhook_secret: str | None = None
    redis: str | None = None  # BRPOP nc:recordings: finished recordings announced by the call server


def _newest_write(room: Path) -> float:
    """The latest modification time of the manifest and any segment of the room."""
    newest = 0.0
    for dirpath, _, filenames in os.walk(room):
        for name in filenames:
            if name.startswith("."):
                continue
            try:
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
            except FileNotFoundError:
                pass
    return newest


def room_state(room: Path, stale: float, now: float) -> str:
    """``done``, ``failed``, ``ready`` (to process), ``recording`` (still written) or ``none`` (not a room)."""
    if (room / DONE).exists():
        return "done"
    if (room / FAILED).exists():
        return "failed"
    manifest = room / MANIFEST_NAME
    if not manifest.exists():
        return "none"
    try:
        ended = Manifest.from_json(manifest.read_bytes()).ended_at is not None
    except (OSError, NetcoreError):
        ended = False  # unreadable now: processed once stale, which then reports the error
    if ended or now - _newest_write(room) >= stale:
        return "ready"
    return "recording"


def _write_atomically(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class Worker:
    """The loop: scan, process, notify (see the module docstring)."""

    settings: WorkerSettings
    store: Store | None = None
    clock: Callable[[], float] = time.time
    processed: list[dict] = field(default_factory=list)
    _link: Any = None
    _wake: asyncio.Event | None = None
    _acks: dict[str, asyncio.Future] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.store is None:
            self.store = DirectoryStore(self.settings.out)

    # -- one room -----------------------------------------------------------------------

    def process(self, room: Path) -> dict | None:
        """Make the files of one room if it is ready and nobody else does; its ``.done`` record, or None."""
        lock = os.open(room / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # another worker has it
            if room_state(room, self.settings.stale, self.clock()) != "ready":
                return None
            return self._create(room)
        finally:
            os.close(lock)  # releases the lock

    def _create(self, room: Path) -> dict | None:
        started = time.monotonic()
        try:
            recording = create_recording(room, self.store, composite=self.settings.composite)
        except (NetcoreError, OSError) as exc:
            _write_atomically(room / FAILED, {"error": str(exc), "at": self.clock()})
            log_event("recording.failed", room=room.name, reason=str(exc))
            return None
        manifest = Manifest.from_json((room / MANIFEST_NAME).read_bytes())
        users = sorted({p.name for p in manifest.participants if p.name})
        done = {
            "room_id": recording.room, "directory": str(room), "location": recording.sidecar_location, "duration": recording.duration,
            "users": users, "ended": manifest.ended_at is not None,
            "files": [{"participant": f.participant, "name": f.name, "location": f.location} for f in recording.files],
            "notified": False, "webhook": self.settings.webhook is None, "sidecar": recording.sidecar,
        }
        _write_atomically(room / DONE, done)
        log_event("recording.created", room=recording.room, directory=room.name, location=recording.sidecar_location,
                  files=len(recording.files), duration=round(recording.duration, 3),
                  seconds=round(time.monotonic() - started, 3), ended=done["ended"])
        self.processed.append(done)
        return done

    def scan(self) -> list[Path]:
        """Rooms of the root ready to process now (oldest first by name)."""
        if not self.settings.root.is_dir():
            return []
        now = self.clock()
        return [p for p in sorted(self.settings.root.iterdir())
                if p.is_dir() and room_state(p, self.settings.stale, now) == "ready"]

    def pending(self) -> list[Path]:
        """Processed rooms whose notification or webhook has not gone out yet."""
        out = []
        rooms = sorted(self.settings.root.iterdir()) if self.settings.root.is_dir() else []
        rooms += [Path(d["directory"]) for d in self.processed if Path(d["directory"]).parent != self.settings.root]
        for p in rooms:
            try:
                done = json.loads((p / DONE).read_text())
            except (OSError, ValueError):
                continue
            if not done.get("notified") or not done.get("webhook", True):
                out.append(p)
        return out

    # -- the loop -----------------------------------------------------------------------

    async def run(self, once: bool = False, once_timeout: float = 15.0) -> None:
        """Scan and process until cancelled; ``once``: one pass, then its notifications (for at most
        ``once_timeout`` seconds), then return."""
        self._wake = asyncio.Event()
        give_up = asyncio.get_running_loop().time() + once_timeout
        tasks = []
        if self.settings.signal:
            tasks.append(asyncio.create_task(self._service_loop()))
        if self.settings.redis and not once:
            tasks.append(asyncio.create_task(self._redis_loop()))
        try:
            while True:
                for room in self.scan():
                    await asyncio.to_thread(self.process, room)
                await self._deliver()
                if once and (not self.pending() or asyncio.get_running_loop().time() >= give_up):
                    return
                try:
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
        finally:
            for task in tasks:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass

    async def _deliver(self) -> None:
        for room in self.pending():
            done = json.loads((room / DONE).read_text())
            changed = False
            if not done.get("notified"):
                if not self.settings.signal:
                    done["notified"] = changed = True
                elif await self._notify(done):
                    done["notified"] = changed = True
                    log_event("recording.notified", room=done["room_id"], users=done["users"])
            if not done.get("webhook", True) and self.clock() >= done.get("webhook_next", 0):
                changed = True
                if await asyncio.to_thread(self._post_webhook, done["sidecar"]):
                    done["webhook"] = True
                else:
                    attempts = done["webhook_attempts"] = done.get("webhook_attempts", 0) + 1
                    delay = min(WEBHOOK_DELAYS[0] * 2 ** (attempts - 1), WEBHOOK_DELAYS[1])
                    done["webhook_next"] = self.clock() + delay
            if changed:
                _write_atomically(room / DONE, done)

    async def _redis_loop(self) -> None:
        """Rooms announced on ``nc:recordings``: processed as they come (the scan remains for the stale)."""
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        delay = RECONNECT_DELAY[0]
        while True:
            client = aioredis.from_url(self.settings.redis or "")
            try:
                while True:
                    item = await client.brpop([RECORDINGS_LIST], timeout=1)
                    delay = RECONNECT_DELAY[0]
                    if item is None:
                        continue
                    try:
                        directory = Path(json.loads(item[1])["directory"])
                    except (ValueError, KeyError, TypeError):
                        log_event("redis.bad_item", item=str(item[1])[:200])
                        continue
                    log_event("recording.announced", directory=str(directory))
                    if directory.is_dir():
                        await asyncio.to_thread(self.process, directory)
                        if self._wake is not None:
                            self._wake.set()  # its notification, now
            except (RedisError, OSError) as exc:
                log_event("redis.unavailable", reason=str(exc))
            finally:
                await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_DELAY[1])

    # -- the service link ---------------------------------------------------------------

    async def _notify(self, done: dict) -> bool:
        """recording.ready over the link; True once signaling acknowledged it."""
        link = self._link
        if link is None:
            return False
        message_id = f"ready-{done['room_id']}-{int(self.clock() * 1000)}"
        payload = {"room_id": done["room_id"], "location": done["location"], "users": done["users"],
                   "files": done["files"], **ready_details(done.get("sidecar"))}
        waiter = self._acks[message_id] = asyncio.get_running_loop().create_future()
        try:
            await link.send(json.dumps({"v": 1, "type": "recording.ready", "id": message_id, "payload": payload}))
            await asyncio.wait_for(waiter, 10)
            return True
        except Exception:  # the link dropped or signal did not answer: again on the next pass
            return False
        finally:
            self._acks.pop(message_id, None)

    async def _service_loop(self) -> None:
        url = self.settings.signal or ""
        url += ("&" if "?" in url else "?") + "role=recorder"
        await keep_linked(url, self.settings.service_secret, self._set_link, self._on_link_message, log_event)

    def _set_link(self, ws: Any) -> None:
        self._link = ws
        if ws is not None and self._wake is not None:
            self._wake.set()  # deliver what waited for the link

    def _on_link_message(self, text: str | bytes) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        waiter = self._acks.get(message.get("id"))
        if waiter is not None and not waiter.done() and message.get("type") == "ack":
            waiter.set_result(message.get("payload"))

    # -- the webhook --------------------------------------------------------------------

    def _post_webhook(self, sidecar: dict) -> bool:
        body = json.dumps(sidecar, sort_keys=True).encode()
        headers = {"Content-Type": "application/json"}
        if self.settings.webhook_secret:
            headers["X-Netcore-Signature"] = sign(self.settings.webhook_secret, body)
        request = urllib.request.Request(self.settings.webhook or "", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                ok = 200 <= response.status < 300
        except (OSError, ValueError) as exc:
            log_event("webhook.failed", url=self.settings.webhook, reason=str(exc))
            return False
        log_event("webhook.sent" if ok else "webhook.failed", url=self.settings.webhook, room=sidecar.get("room"))
        return ok
