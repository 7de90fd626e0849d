"""``netcore-record``: a recorded room's journal directory to playable files.

    netcore-record JOURNAL_DIR [--out DIR] [--composite] [--quiet]
    netcore-record worker --root DIR --out DIR [--signal URL --service-secret S] [--stale S] [--once]

One WebM (VP8 + Opus) or Matroska (H.264) file per participant, without
re-encoding, and a JSON sidecar, in ``--out`` (default: the current
directory); ``--composite`` adds one file of the whole call.  A progress
bar on stderr for long rooms.  Exit status 0 on success, 1 with one line
on stderr for a journal that is missing or corrupt, 2 for bad arguments.

``worker`` runs until SIGTERM/SIGINT and makes the files of every room the
call server finished under ``--root`` (see :mod:`servers.record.worker`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

from netcore.errors import NetcoreError, UsageError
from netcore.record.creator import create_recording
from servers.settings import read_toml

__all__ = ["main", "ProgressBar"]


class ProgressBar:
    """``[#####.....]  45%  4:30 / 10:00 of call`` on one line, redrawn at most ten times a second."""

    def __init__(self, stream=sys.stderr, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self._last = 0.0
        self.drawn = 0

    def __call__(self, done: float, total: float) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        share = 1.0 if total <= 0 else max(0.0, min(1.0, done / total))
        filled = int(share * self.width)
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {share * 100:3.0f}%  "
                          f"{_clock(done)} / {_clock(total)} of call")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()
        self.drawn += 1


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def worker_main(argv: list[str]) -> int:
    from servers.record.worker import Worker, WorkerSettings

    parser = argparse.ArgumentParser(prog="netcore-record worker",
                                     description="make the files of every finished room under --root")
    parser.add_argument("--root", type=Path, required=True, help="the call server's recordings (its --record-dir)")
    parser.add_argument("--out", type=Path, default=Path("recordings"), help="where the files go (a directory)")
    parser.add_argument("--signal", help="netcore-signal's service link, ws://HOST:PORT/v1/service")
    parser.add_argument("--service-secret", help="its bearer secret (or NETCORE_SERVICE_SECRET, or --config)")
    parser.add_argument("--config", help="TOML file with service-secret and webhook-secret (keeps them off ps)")
    parser.add_argument("--stale", type=float, default=30.0,
                        help="seconds without a write before a room without ended_at is taken (default 30)")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between scans of --root (default 1)")
    parser.add_argument("--composite", action="store_true", help="also one file of the whole call")
    parser.add_argument("--webhook", help="POST each sidecar here, signed with --webhook-secret")
    parser.add_argument("--webhook-secret", help="HMAC-SHA256 key of the webhook's X-Netcore-Signature")
    parser.add_argument("--redis", help="Redis URL: also take the rooms netcore-sfu announces on nc:recordings")
    parser.add_argument("--once", action="store_true", help="one pass over --root, then exit")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    secrets: dict = {}
    if args.config:
        try:
            secrets = read_toml(args.config, {"service-secret", "webhook-secret"})
        except (OSError, UsageError) as exc:
            print(f"netcore-record: {exc}", file=sys.stderr)
            return 2
    service_secret = (args.service_secret or secrets.get("service-secret")
                      or os.environ.get("NETCORE_SERVICE_SECRET"))
    if args.signal and not service_secret:
        print("netcore-record: --signal needs --service-secret", file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), format="%(message)s", stream=sys.stderr)
    settings = WorkerSettings(args.root, args.out, args.signal, service_secret, args.stale, args.poll,
                              args.composite, args.webhook, args.webhook_secret or secrets.get("webhook-secret"),
                              args.redis)

    async def serve() -> None:
        task = asyncio.ensure_future(Worker(settings).run(once=args.once))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        print(f"watching {args.root}", flush=True)  # for whoever started us
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(serve())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:  # a journal directory named "worker": say ./worker
        return worker_main(argv[1:])
    parser = argparse.ArgumentParser(prog="netcore-record", description=__doc__.split("\n\n")[0])
    parser.add_argument("journal", type=Path, help="a recorded room's journal directory")
    parser.add_argument("--out", type=Path, default=Path("."), help="where the files go (a directory)")
    parser.add_argument("--composite", action="store_true", help="also one file of the whole call (re-encoded)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    progress = None if args.quiet else ProgressBar()
    try:
        recording = create_recording(args.journal, args.out, progress=progress, composite=args.composite)
    except (NetcoreError, OSError) as exc:
        print(f"netcore-record: {exc}", file=sys.stderr)
        return 1
    for f in recording.files:
        print(f.location)
    print(recording.sidecar_location)
    return 0


if __name__ == "__main__":
    sys.exit(main())
