"""netcore-sfu: the call server daemon. SIGTERM/SIGINT: every participant gets BYE and close_notify, exit 0."""

from __future__ import annotations

import sys

from servers.daemon import daemon_main, stop_event
from servers.sfu.config import build_parser, load_settings
from servers.sfu.server import SfuServer

__all__ = ["main"]


async def serve(settings) -> None:
    server = SfuServer(settings)
    await server.start()
    http = server.http_address[1] if server.http is not None else 0
    transcode = f" transcode={server.transcode_port}" if server.transcode_port is not None else ""
    cascade = f" cascade={server.cascade_port}" if server.cascade_port is not None else ""
    print(f"listening media={server.media_port} http={http}{transcode}{cascade}", flush=True)  # for whoever started us
    await stop_event().wait()
    await server.close()


def main(argv: list[str] | None = None) -> int:
    return daemon_main("netcore-sfu", argv, build_parser(), load_settings, serve)


if __name__ == "__main__":
    sys.exit(main())
