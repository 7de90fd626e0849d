"""What the daemons share at run time: the clean way down on SIGTERM or SIGINT, and their ``main``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any, Awaitable, Callable

from netcore.aio import run
from netcore.errors import UsageError

__all__ = ["stop_event", "daemon_main", "cancel_and_wait"]


def stop_event() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT, in place of their default (dying mid-write).

    A daemon awaits it, then closes its listeners and sessions; call it from
    the running loop, once the daemon is ready to be stopped so.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


def daemon_main(prog: str, argv: list[str] | None, parser: argparse.ArgumentParser,
                load: Callable[[argparse.Namespace], Any], serve: Callable[[Any], Awaitable[None]]) -> int:
    """Parse the flags, load the settings (exit 2 with one line on stderr if they are bad), set up the
    JSON-lines logging on stderr at the settings' ``log_level``, and run ``serve(settings)`` (exit 1 with
    one line for an OSError: a port taken, an address not ours)."""
    args = parser.parse_args(argv)
    try:
        settings = load(args)
    except (UsageError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(logging, settings.log_level.upper()), format="%(message)s",
                        stream=sys.stderr)
    try:
        run(serve(settings))
    except OSError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    return 0


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel ``task`` (None: nothing) and wait for it to end, whatever it ends with: a daemon going down
    does not stop for a background task's last error."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass
