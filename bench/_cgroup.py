"""A benchmark's server held to a share of a core: a cgroup with CFS bandwidth control (root, cgroup v1).

On a two-core machine a server that saturates a core leaves nothing to the
processes that load it. Held to a share Q of a core, a server does at a load
L what a whole core does at L / Q, and the load's own processes keep the
rest of the machine. Every thread of every process in the group counts
against the one quota, so a multi-process or multi-threaded server is held
as a whole.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

CGROUP_CPU = Path("/sys/fs/cgroup/cpu")  # cgroup v1's cpu controller, as on these machines
CGROUP_PERIOD_US = 10_000  # a short period: a throttled server stalls at most this long at a time


@contextlib.contextmanager
def cpu_group(share: float | None, name: str) -> Iterator[Path | None]:
    """A new cgroup allowed ``share`` of one core (more than 1 for more than one core), or None when
    ``share`` is None. On exit whatever is still in it goes back to the root group and it is removed."""
    if share is None:
        yield None
        return
    group = CGROUP_CPU / f"netcore-bench-{os.getpid()}-{name}"
    group.mkdir()
    try:
        (group / "cpu.cfs_period_us").write_text(str(CGROUP_PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(round(share * CGROUP_PERIOD_US)))
        yield group
    finally:
        with contextlib.suppress(OSError):
            for pid in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):  # it may have exited meanwhile
                    (CGROUP_CPU / "cgroup.procs").write_text(pid)
        with contextlib.suppress(OSError):
            group.rmdir()


def joined(group: Path | None, cmd: list[str]) -> list[str]:
    """``cmd`` started inside ``group`` (a shell joins it, then execs ``cmd``, which keeps its pid), so
    every process and thread it starts is in the group from its first instruction."""
    if group is None:
        return cmd
    return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(group / "cgroup.procs"), *cmd]


@contextlib.contextmanager
def cpu_share(pid: int, share: float | None, name: str) -> Iterator[None]:
    """Running process ``pid`` (every thread) held to ``share`` of one core while inside, or left be when
    ``share`` is None."""
    with cpu_group(share, name) as group:
        if group is not None:
            (group / "cgroup.procs").write_text(str(pid))
        yield
