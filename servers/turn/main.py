"""netcore-turn: the STUN/TURN daemon.

One process runs one :class:`~netcore.turn.server.TurnServer` behind the fast
UDP adapter of :mod:`netcore.turn.aio_server`. ``--workers N`` starts N such
processes that share the listening ports with SO_REUSEPORT (the kernel keeps
each client's 5-tuple on one worker) and split the relay port range.

Signals: SIGTERM/SIGINT close every allocation (logging each) and exit 0;
SIGHUP re-reads the config file and flags and applies users, secrets, realm
and peer rules without dropping allocations. ``--handover PATH``: a daemon
started with the same path takes over the listening sockets while this one
drains its allocations and then exits (:mod:`netcore.turn.handover`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

from netcore.aio import run
from netcore.errors import UsageError
from netcore.turn import wire
from netcore.turn import aio_native
from netcore.turn.aio_server import TurnServerEndpoint, SocketRelays, open_stream_socket, open_udp_socket
from netcore.turn.handover import Predecessor, Successor
from netcore.turn.server import TurnServer
from netcore.turn.server_events import AllocationDeleted, AllocationGranted, AllocationRenewed
from servers.analytics.producer import AnalyticsProducer, open_writer
from servers.analytics.turn_events import AllocationEvents
from servers.turn.config import Settings, build_parser, load_settings
from servers.turn.metrics import render_metrics, serve_metrics

log = logging.getLogger("netcore.turn")


def _fmt(addr: tuple) -> str:
    """``host:port`` (``[v6]:port``), and ``/tcp`` or ``/tls`` for stream listeners."""
    host, port = addr[0], addr[1]
    text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{text}/{addr[2]}" if len(addr) > 2 else text


def log_event(event: object) -> None:
    """One structured line per allocation change; never a password or key."""
    if not log.isEnabledFor(logging.INFO):
        return  # the arguments below cost more than the call when nothing is written (every Refresh)
    if isinstance(event, AllocationGranted):
        log.info("allocation created client=%s listener=%s user=%s relayed=%s lifetime=%d",
                 _fmt(event.client), _fmt(event.listener), event.username,
                 ",".join(_fmt(r) for r in event.relayed), event.lifetime)
    elif isinstance(event, AllocationRenewed):
        log.info("allocation refreshed client=%s listener=%s user=%s lifetime=%d",
                 _fmt(event.client), _fmt(event.listener), event.username, event.lifetime)
    elif isinstance(event, AllocationDeleted):
        log.info("allocation %s client=%s listener=%s user=%s relayed=%s packets_to_peer=%d bytes_to_peer=%d "
                 "packets_to_client=%d bytes_to_client=%d", event.reason, _fmt(event.client),
                 _fmt(event.listener), event.username, ",".join(_fmt(r) for r in event.relayed),
                 event.packets_to_peer, event.bytes_to_peer, event.packets_to_client, event.bytes_to_client)


def _relay_ips(settings: Settings) -> tuple[dict[int, str], dict[int, str]]:
    relay: dict[int, str] = {}
    for ip in settings["relay-ip"]:
        relay.setdefault(wire.FAMILY_IPV6 if ":" in ip else wire.FAMILY_IPV4, ip)
    if not relay:
        for host, _ in settings["listen"]:
            family = wire.FAMILY_IPV6 if ":" in host else wire.FAMILY_IPV4
            if host not in ("0.0.0.0", "::"):
                relay.setdefault(family, host)
    if not relay:
        raise UsageError("listening on a wildcard address needs --relay-ip")
    for ip in relay.values():
        _check_local(ip)
    external: dict[int, str] = {}
    for ip in settings["external-ip"]:
        external.setdefault(wire.FAMILY_IPV6 if ":" in ip else wire.FAMILY_IPV4, ip)
    return relay, external


def _bind(opener, host: str, port: int, **kwargs) -> socket.socket:
    """``opener(host, port)``, with the address named when it fails ("Address already in use: 127.0.0.1:3478")."""
    try:
        return opener(host, port, **kwargs)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise OSError(exc.errno, f"{reason}: {_fmt((host, port))}") from None


def _reason(exc: BaseException) -> str:
    """One sentence for the log: an OSError's text without the ``[Errno N]`` prefix."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _check_local(ip: str) -> None:
    """Refuse a relay address that this host does not have: every Allocate would fail with 508."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((ip, 0))
        except OSError as exc:
            raise UsageError(f"--relay-ip {ip} is not an address of this host ({exc.strerror})") from None


def _port_slice(settings: Settings, index: int, workers: int) -> tuple[int, int]:
    low, high = settings["min-port"], settings["max-port"]
    span = (high - low + 1) // workers
    if span < 1:
        raise UsageError("the relay port range is smaller than the number of workers")
    start = low + index * span
    return start, (high if index == workers - 1 else start + span - 1)


async def serve(parser_args, settings: Settings) -> int:
    index = parser_args.worker_index or 0
    workers = settings["workers"]
    relay_ips, external_ips = _relay_ips(settings)
    low, high = _port_slice(settings, index, workers)
    relays = SocketRelays(relay_ips, low, high, external_ips)
    loop = asyncio.get_running_loop()
    core = TurnServer(settings.server_config(), relays, wallclock_offset=time.time() - loop.time())
    native = settings["data-path"] == "native"
    if native and not aio_native.available():
        log.warning("the C data path was not built (no compiler at install time): relaying in Python")
    producer = None
    allocations = None
    if settings["analytics"] or settings["analytics-redis"]:
        producer = AnalyticsProducer(settings["node"] or socket.gethostname(),
                                     open_writer(settings["analytics-redis"], settings["analytics"]))
        allocations = AllocationEvents(producer)
    successor: Successor | None = None

    def on_event(event: object) -> None:
        log_event(event)
        if allocations is not None:
            allocations.on_event(event)
        if successor is not None:
            successor.observe(event)

    endpoint = TurnServerEndpoint(core, relays, on_event, native=native)
    predecessor = Predecessor.connect(settings["handover"], loop) if settings["handover"] else None
    if predecessor is not None:
        endpoint.divert = predecessor.divert
        log.info("took over the listeners of the daemon at %s: its allocations=%d", settings["handover"],
                 len(predecessor.owned))
    # Stream listeners first: once UDP answers a Binding request, everything is up.
    ssl_context = None
    if settings["tls-listen"]:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(settings["cert"], settings["key"])
        ssl_context.num_tickets = 0  # no resumption; turnutils_uclient fails its TLS 1.3 handshakes otherwise
    for kind, addresses in (("tcp", settings["tcp-listen"]), ("tls", settings["tls-listen"])):
        for host, port in addresses:
            sock = predecessor.take_stream((host, port), kind) if predecessor is not None else None
            if sock is None:
                sock = _bind(open_stream_socket, host, port, reuse_port=workers > 1)
            await endpoint.add_stream_listener(sock, ssl_context if kind == "tls" else None)
            log.info("listening %s %s worker=%d", kind, _fmt((host, port)), index)
    inherited = [int(fd) for fd in parser_args.inherit_fds.split(",")] if parser_args.inherit_fds else []
    for number, (host, port) in enumerate(settings["listen"]):
        taken = predecessor.take_udp((host, port)) if predecessor is not None else None
        if taken is not None:
            sock = taken
        elif inherited:
            sock = socket.socket(fileno=inherited[number])
            sock.setblocking(False)
        else:
            sock = _bind(open_udp_socket, host, port, reuse_port=workers > 1)
        endpoint.add_listener(sock)
        log.info("listening udp %s worker=%d relay_ports=%d-%d", _fmt((host, port)), index, low, high)
    metrics_server = None
    if settings["metrics"] is not None:
        host, port = settings["metrics"]
        metrics_server = await serve_metrics(host, port + index, lambda: render_metrics(endpoint, index, producer))
        log.info("metrics on http://%s/metrics", _fmt((host, port + index)))

    # Relaying allocates only short-lived tuples, but each one counts towards the
    # cyclic collector's thresholds; a full collection walking every long-lived
    # object would land in the middle of the relay path. Freeze what start-up
    # built and collect the young generation less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    stop = asyncio.Event()

    def reload() -> None:
        try:
            fresh = load_settings(build_parser().parse_args(sys.argv[1:]))
            endpoint.reconfigure(fresh.server_config())
            if ssl_context is not None and fresh["cert"] and fresh["key"]:
                ssl_context.load_cert_chain(fresh["cert"], fresh["key"])  # new handshakes use it
            log.info("reloaded users=%d secrets=%d allocations=%d", len(fresh["user"]),
                     len(fresh["auth-secret"]), len(core.allocations))
        except (OSError, UsageError, ValueError, ssl.SSLError) as exc:
            log.error("reload failed, keeping the old settings: %s", exc)

    if settings["handover"]:
        successor = Successor(settings["handover"], endpoint, stop.set)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    await stop.wait()
    log.info("shutting down allocations=%d", len(core.allocations))
    if successor is not None:
        successor.close()
    if predecessor is not None:
        predecessor.close()
    endpoint.close()
    if metrics_server is not None:
        metrics_server.close()
    if producer is not None:
        producer.close()  # after endpoint.close(): the shutdown deletions are written too
    return 0


def _supervise(argv: list[str], settings: Settings) -> int:
    """Start one process per worker and relay SIGTERM/SIGHUP to them.

    The supervisor binds every worker's listening sockets (SO_REUSEPORT)
    before any worker starts and hands each its own, so that the kernel's
    reuseport group never changes while clients are served: a change would
    move 5-tuples from one worker to another.
    """
    workers = settings["workers"]
    groups = [[_bind(open_udp_socket, host, port, reuse_port=True) for host, port in settings["listen"]]
              for _ in range(workers)]
    children = []
    for index, socks in enumerate(groups):
        fds = [s.fileno() for s in socks]
        children.append(subprocess.Popen(
            [sys.executable, "-m", "servers.turn.main", *argv, "--worker-index", str(index),
             "--inherit-fds", ",".join(map(str, fds))], pass_fds=fds))
    for socks in groups:
        for sock in socks:
            sock.close()

    stopping = []

    def forward(signum: int, frame: object) -> None:
        if signum != signal.SIGHUP:
            if stopping:
                return  # each worker is told once: a second SIGTERM would kill it mid-shutdown
            stopping.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    # The first worker to exit ends the service: the others are asked to stop.
    pid, status = os.wait()
    first = next(child for child in children if child.pid == pid)
    first.returncode = os.waitstatus_to_exitcode(status)
    forward(signal.SIGTERM, None)
    codes = [first.returncode] + [child.wait() for child in children if child is not first]
    return max(codes, key=abs)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args)
    except (OSError, UsageError, ValueError) as exc:
        parser.error(str(exc))
    logging.basicConfig(level=settings["log-level"].upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if settings["workers"] > 1 and args.worker_index is None:
        try:
            sys.exit(_supervise(argv, settings))
        except OSError as exc:
            log.error("%s", _reason(exc))
            sys.exit(1)
    try:
        sys.exit(run(serve(args, settings)))
    except (OSError, UsageError, ssl.SSLError) as exc:
        log.error("%s", _reason(exc))
        sys.exit(1)


if __name__ == "__main__":
    main()
