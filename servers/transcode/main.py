"""netcore-transcode: the transcoding worker. SIGTERM/SIGINT: every job's connection gets BYE and
close_notify, exit 0."""

from __future__ import annotations

import sys

from servers.daemon import daemon_main, stop_event
from servers.transcode.config import build_parser, load_settings
from servers.transcode.service import TranscodeService

__all__ = ["main"]


async def serve(settings) -> None:
    service = TranscodeService(settings)
    await service.start()
    http = service.http_address[1] if service.http is not None else 0
    print(f"listening http={http}", flush=True)  # for whoever started us
    await stop_event().wait()
    await service.close()


def main(argv: list[str] | None = None) -> int:
    return daemon_main("netcore-transcode", argv, build_parser(), load_settings, serve)


if __name__ == "__main__":
    sys.exit(main())
