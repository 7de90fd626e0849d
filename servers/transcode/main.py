"""netcore-transcode: the transcoding worker. SIGTERM/SIGINT: every job's connection gets BYE and
close_notify, exit 0."""

from __future__ import annotations

import logging
import sys

from netcore.aio import run
from netcore.errors import UsageError
from servers.daemon import stop_event
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
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args)
    except (UsageError, OSError) as exc:
        print(f"netcore-transcode: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(logging, settings.log_level.upper()), format="%(message)s",
                        stream=sys.stderr)
    try:
        run(serve(settings))
    except OSError as exc:
        print(f"netcore-transcode: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
