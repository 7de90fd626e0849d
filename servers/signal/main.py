"""``netcore-signal``: run one signaling node until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import sys

from netcore.aio import run
from servers.daemon import stop_event

from .config import load_config
from .server import SignalServer


async def serve(argv: list[str] | None = None) -> None:
    config = load_config(argv)
    logging.basicConfig(stream=sys.stderr, level=config.log_level.upper(), format="%(message)s")
    cluster = None
    if config.redis:
        from .cluster import Cluster

        cluster = Cluster(config)
    server = SignalServer(config, cluster=cluster)
    await server.start()
    # Machine-readable line for supervisors and tests that asked for port 0.
    print(f"listening {server.config.host} {server.port}", flush=True)
    await stop_event().wait()
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    try:
        run(serve(argv))
    except OSError as exc:  # a port in use, an unreadable data directory: one sentence, no traceback
        print(f"netcore-signal: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
