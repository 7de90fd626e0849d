"""The call server's links to other call servers (``netcore-sfu --cascade HOST:PORT --upstream URL``).

:class:`netcore.sfu.cascade.CascadeCore` decides; this module carries its
control messages over WebSockets and owns the links' UDP sockets
(docs/broadcast.md):

* as an upstream, it serves WebSockets on ``--cascade``: each connection is
  one link for one room, authenticated with ``--service-secret`` (a bearer
  token); ``link.open`` is answered with ``link.opened`` (the SRTP keys,
  the path, the tracks and the address of our link media socket,
  ``--cascade-media``) or ``link.refused``; ``link.pull``/``link.release``
  follow; the room's ``link.tracks`` are pushed when its tracks change;
* as a downstream, for each room the core wants (``UplinkWanted``) it
  connects to ``--upstream`` (the room's id there is ``--cascade-room``'s
  mapping, ``*`` for any room without its own, else the same), opens a UDP socket of its own for the link and
  sends the core's pulls; a link that breaks is opened again (the core
  asks again while the room is needed) after :data:`RETRY_DELAY`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable

from netcore.aio import DatagramSocket
from netcore.driver import Driver
from netcore.net import Address
from netcore.sfu.cascade import (CascadeCore, DownlinkSilent, LoopRefused, PullChanged, TracksChanged, UplinkIdle,
                                 UplinkWanted)
from netcore.sfu.topology import AVOID_FOR
from servers.servicelink import bearer_authorized, send_message

__all__ = ["CascadeLinks", "OPEN_TIMEOUT", "RETRY_DELAY", "render_cascade_metrics"]

OPEN_TIMEOUT = 5.0  # seconds for link.open to be said, or for link.opened to come
RETRY_DELAY = 0.5  # seconds before a room's broken or refused uplink is tried again


class CascadeLinks:
    """Both ends of this server's links: the WebSocket server, the uplinks' connections and sockets."""

    def __init__(self, cascade: CascadeCore, driver: Driver, secret: str | None,
                 upstream: str | Callable[[frozenset[str]], Awaitable[str | None]] | None,
                 rooms: dict[str, str], media_host: str, public: Callable[[Address], Address],
                 log: Callable[..., None]) -> None:
        """``upstream``: the URL to pull rooms from, or a chooser given the URLs to avoid (the registry's,
        netcore.sfu.topology), or None (an origin)."""
        self.cascade, self.driver, self.secret, self.upstream = cascade, driver, secret, upstream
        self._avoid: dict[str, float] = {}  # upstream URL -> until when it is not chosen (it just failed us)
        self.rooms, self.media_host, self.public, self.log = rooms, media_host, public, log
        self.server: Any = None
        self.downlinks: dict[str, Any] = {}  # link id -> its WebSocket
        self.uplinks: dict[str, tuple[Any, DatagramSocket | None, asyncio.Task]] = {}  # room -> (ws, socket, task)
        self.sockets: dict[Address, DatagramSocket] = {}  # our uplinks' sockets, by local address
        self._closing = False

    async def start(self, host: str, port: int) -> int:
        from websockets.asyncio.server import serve

        self.server = await serve(self._handle, host, port, max_size=2**20)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._closing = True
        for room_id in list(self.uplinks):
            await self._drop_uplink(room_id)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- events of the core ---------------------------------------------------------

    def on_event(self, event: object) -> None:
        if isinstance(event, TracksChanged):
            description = self.cascade.description(event.room_id)
            self.cascade.announced(event.room_id)
            for link_id, ws in list(self.downlinks.items()):
                downlink = self.cascade.downlinks.get(link_id)
                if downlink is not None and downlink.room_id == event.room_id:
                    send_message(ws, "link.tracks", description)
        elif isinstance(event, PullChanged):
            entry = self.uplinks.get(event.room_id)
            if entry is not None:
                send_message(entry[0], "link.pull" if event.pulled else "link.release", {"track": event.track})
        elif isinstance(event, UplinkWanted):
            if self.upstream and not self._closing and event.room_id not in self.uplinks:
                task = asyncio.ensure_future(self._uplink(event.room_id))
                self.uplinks[event.room_id] = (None, None, task)
        elif isinstance(event, UplinkIdle):
            if event.room_id in self.uplinks:
                asyncio.ensure_future(self._drop_uplink(event.room_id))
        elif isinstance(event, DownlinkSilent):
            ws = self.downlinks.pop(event.link_id, None)
            self.log("cascade.downlink_silent", room=event.room_id, link=event.link_id)
            if ws is not None:
                asyncio.ensure_future(ws.close(4408, "silent"))

    # -- the upstream end: links from servers below -----------------------------------

    async def _handle(self, ws: Any) -> None:
        if not bearer_authorized(ws, self.secret):
            await ws.close(4401, "unauthorized")
            return
        try:
            hello = json.loads(await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT))
            payload = hello.get("payload") or {}
            room_id, server = str(payload["room"]), str(payload["server"])
            if hello.get("type") != "link.open" or not room_id or not server:
                raise ValueError("link.open expected")
        except (asyncio.TimeoutError, ValueError, KeyError, TypeError, AttributeError):
            await ws.close(4400, "link.open expected")
            return
        except Exception:  # closed before saying anything
            return
        try:
            opened = self.cascade.open_downlink(room_id, server, self._now())
        except LoopRefused as exc:
            self.log("cascade.refused", room=room_id, server=server, reason=str(exc))
            try:  # (said before the close, not queued behind it)
                await ws.send(json.dumps({"v": 1, "type": "link.refused", "payload": {"room": room_id,
                                                                                   "reason": str(exc)}}))
            except Exception:  # noqa: BLE001 - gone already
                pass
            await ws.close(4409, "loop")
            return
        link_id = opened["link"]
        self.cascade.announced(room_id)
        host, port = self.public(self.cascade.address)
        send_message(ws, "link.opened", {**opened, "media": [host, port]})
        self.downlinks[link_id] = ws
        self.log("cascade.downlink_opened", room=room_id, server=server, link=link_id)
        self.driver.flush()
        try:
            async for text in ws:
                self._on_downlink_message(link_id, text)
        except Exception as exc:  # the link broke: D is gone
            self.log("cascade.link_error", link=link_id, reason=str(exc) or type(exc).__name__)
        finally:
            self.downlinks.pop(link_id, None)
            self.cascade.close_downlink(link_id, self._now())
            self.log("cascade.downlink_closed", room=room_id, server=server, link=link_id)
            self.driver.flush()

    def _on_downlink_message(self, link_id: str, text: str | bytes) -> None:
        try:
            message = json.loads(text)
            kind, track = message.get("type"), str((message.get("payload") or {})["track"])
        except (ValueError, AttributeError, KeyError, TypeError):
            self.log("cascade.bad_message", link=link_id)
            return
        if kind == "link.pull":
            self.cascade.pull(link_id, track, self._now())
        elif kind == "link.release":
            self.cascade.release(link_id, track, self._now())
        else:
            self.log("cascade.unknown_message", link=link_id, type=kind)
            return
        self.driver.flush()

    # -- the downstream end: our links to the upstream --------------------------------

    async def _uplink(self, room_id: str) -> None:
        """Open the room's link, follow its messages until it closes; then it is free to be wanted again."""
        from websockets.asyncio.client import connect

        there = self.rooms.get(room_id, self.rooms.get("*", room_id))  # ("*": every room of an edge is one event)
        sock: DatagramSocket | None = None
        url = None
        try:
            url = await self._choose()
            if url is None:
                raise OSError("no upstream registered")
            headers = {"Authorization": f"Bearer {self.secret}"} if self.secret else {}
            async with connect(url, additional_headers=headers, max_size=2**20) as ws:
                await ws.send(json.dumps({"v": 1, "type": "link.open",
                                          "payload": {"room": there, "server": self.cascade.server_id}}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT))
                payload = reply.get("payload") or {}
                if reply.get("type") != "link.opened":
                    raise ValueError(f"link refused: {payload.get('reason')}")
                loop = asyncio.get_running_loop()
                _, sock = await loop.create_datagram_endpoint(lambda: DatagramSocket(self.driver.receive),
                                                              local_addr=(self.media_host, 0))
                upstream = (str(payload["media"][0]), int(payload["media"][1]))
                self.sockets[sock.local] = sock
                self.cascade.open_uplink(room_id, payload, sock.local, upstream, self._now())
                self.uplinks[room_id] = (ws, sock, self.uplinks[room_id][2])
                self.log("cascade.uplink_opened", room=room_id, upstream=url, link=payload.get("link"),
                         path=payload.get("path"))
                self.driver.flush()
                async for text in ws:
                    message = json.loads(text)
                    if message.get("type") == "link.tracks":
                        self.cascade.uplink_tracks(room_id, message.get("payload") or {}, self._now())
                        self.driver.flush()
            if url is not None:
                self._avoid[url] = self._now() + AVOID_FOR  # it closed the link: gone, or going
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - unreachable, refused, malformed, or the link broke
            self.log("cascade.uplink_error", room=room_id, upstream=url, reason=str(exc) or type(exc).__name__)
            if url is not None:
                self._avoid[url] = self._now() + AVOID_FOR
        finally:
            self._forget_uplink(room_id, sock)
        if not self._closing:
            await asyncio.sleep(RETRY_DELAY)
            self.cascade.uplink_lost(room_id, self._now())  # still needed: the core wants it again
            self.driver.flush()

    async def _choose(self) -> str | None:
        if self.upstream is None or isinstance(self.upstream, str):
            return self.upstream
        now = self._now()
        self._avoid = {url: until for url, until in self._avoid.items() if until > now}
        return await self.upstream(frozenset(self._avoid))

    def _forget_uplink(self, room_id: str, sock: DatagramSocket | None) -> None:
        entry = self.uplinks.get(room_id)
        if entry is not None and entry[1] is sock:
            del self.uplinks[room_id]
        if sock is not None:
            self.sockets.pop(sock.local, None)
            if sock.transport is not None:
                sock.transport.close()
        if room_id in self.cascade.uplinks and (sock is None or self.cascade.uplinks[room_id].local == sock.local):
            self.cascade.close_uplink(room_id, self._now())
            self.log("cascade.uplink_closed", room=room_id)
        self.driver.flush()

    async def _drop_uplink(self, room_id: str) -> None:
        entry = self.uplinks.pop(room_id, None)
        if entry is None:
            return
        ws, sock, task = entry
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
        self._forget_uplink(room_id, sock)


def render_cascade_metrics(cascade: CascadeCore, now: float) -> str:
    """Prometheus series of the links (appended to the call server's)."""
    lines: list[str] = []

    def family(name: str, kind: str, text: str, rows: list[tuple[dict, float]]) -> None:
        lines.extend([f"# HELP {name} {text}", f"# TYPE {name} {kind}"])
        for labels, value in rows:
            inner = ",".join(f'{k}="{_label(str(v))}"' for k, v in sorted(labels.items()))
            lines.append(f"{name}{{{inner}}} {value}" if inner else f"{name} {value}")

    down = [({"direction": "down", "room": d.room_id, "peer": d.server}, d.stats)
            for d in cascade.downlinks.values()]
    up = [({"direction": "up", "room": u.room_id, "peer": "/".join(u.path[-1:])}, u.stats)
          for u in cascade.uplinks.values()]
    family("sfu_cascade_links", "gauge", "Links to other call servers, by direction (down: we send)",
           [({"direction": "down"}, len(cascade.downlinks)), ({"direction": "up"}, len(cascade.uplinks))])
    family("sfu_cascade_link_bytes_total", "counter", "Media bytes on each link (RTP, before SRTP), repairs included",
           [(labels, stats.bytes) for labels, stats in down + up])
    family("sfu_cascade_link_packets_total", "counter", "Media packets on each link (first sends)",
           [(labels, stats.packets) for labels, stats in down + up])
    family("sfu_cascade_link_bitrate_bps", "gauge", "Measured media bitrate of each link",
           [(labels, int(stats.meter.current(now))) for labels, stats in down + up])
    family("sfu_cascade_link_retransmissions_total", "counter", "Packets re-sent on a link from its history",
           [(labels, stats.retransmissions) for labels, stats in down])
    family("sfu_cascade_link_nacked_packets_total", "counter", "Packets NACKed on each link",
           [(labels, stats.nacks) for labels, stats in down + up])
    family("sfu_cascade_link_plis_total", "counter", "Key frame requests on each link (after aggregation)",
           [(labels, stats.plis) for labels, stats in down + up])
    family("sfu_cascade_pulled_tracks", "gauge", "Tracks pulled over each link",
           [(labels, len(d.pulled)) for (labels, _), d in zip(down, cascade.downlinks.values())])
    family("sfu_cascade_link_drops_total", "counter", "Link datagrams dropped, by reason",
           [({"reason": reason}, count) for reason, count in sorted(cascade.link_drops.items())])
    return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
