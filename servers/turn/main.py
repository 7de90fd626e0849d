"""netcore-turn: the STUN/TURN daemon.

This first cut answers STUN Binding requests on every ``--listen`` address
(UDP); the TURN relay arrives on the same listeners.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from netcore.stun.aio import serve_binding

log = logging.getLogger("netcore.turn")

DEFAULT_LISTEN = "127.0.0.1:3478"


def parse_hostport(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``V6:PORT`` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netcore-turn", description="netcore STUN/TURN server")
    parser.add_argument("--listen", action="append", type=parse_hostport, metavar="HOST:PORT",
                        help=f"UDP address to serve STUN/TURN on; repeatable (default {DEFAULT_LISTEN})")
    parser.add_argument("--software", default="netcore",
                        help="SOFTWARE attribute in responses; empty to send none")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


async def serve(args: argparse.Namespace) -> int:
    listens = args.listen or [parse_hostport(DEFAULT_LISTEN)]
    endpoints = []
    for addr in listens:
        endpoints.append(await serve_binding(addr, args.software or None))
        log.info("listening udp %s:%d", *addr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("shutting down")
    for endpoint in endpoints:
        endpoint.close()
    return 0


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    sys.exit(runner(serve(args)))


if __name__ == "__main__":
    main()
