"""What the daemons share at run time: the clean way down on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal

__all__ = ["stop_event"]


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
