"""netcore-sfu: the call server daemon. SIGTERM/SIGINT: every participant gets BYE and close_notify, exit 0."""

from __future__ import annotations

import logging
import sys

from netcore.aio import run
from netcore.errors import UsageError
from servers.daemon import stop_event
from servers.sfu.config import build_parser, load_settings
from servers.sfu.server import SfuServer

__all__ = ["main"]


async def serve(settings) -> None:
    server = SfuServer(settings)
    await server.start()
    http = server.http_address[1] if server.http is not None else 0
    transcode = f" transcode={server.transcode_port}" if server.transcode_port is not None else ""
    print(f"listening media={server.media_port} http={http}{transcode}", flush=True)  # for whoever started us
    await stop_event().wait()
    await server.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args)
    except (UsageError, OSError) as exc:
        print(f"netcore-sfu: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(logging, settings.log_level.upper()), format="%(message)s",
                        stream=sys.stderr)
    try:
        run(serve(settings))
    except OSError as exc:
        print(f"netcore-sfu: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
