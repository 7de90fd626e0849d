"""What a stall costs: does signaling move rooms off call servers that are only slow? (issue 19, the failover storm)

Real processes on loopback: netcore-signal, two netcore-sfu (``sfu-a``, ``sfu-b``) linked to it,
four rooms of two placed two on each. Three events, one after the other, each followed by a quiet
spell; counted from signaling's log (``service.suspect``, ``service.dead``, ``room.moved``):

* ``own-stall``: signaling itself is stopped (SIGSTOP) for ``--stall`` seconds, then continued: its
  loop was held up, both call servers kept reporting; no server should be declared dead.
* ``slow-server``: ``sfu-a`` is stopped for ``--slow`` seconds (shorter than a stopped process's
  2 + 4 s), then continued: a server starved that long is late, not gone; it should keep its rooms.
* ``killed``: ``sfu-b`` is SIGKILLed: its link closes; its rooms should move at once (the time from
  the kill to the first ``room.moved`` in signaling's log, polled every 20 ms).

Run it from a tree (``python3 bench/failover_stall.py``) and against another tree's code with
``PYTHONPATH=/that/tree python3 bench/failover_stall.py`` (its tests/sfu/live.py starts that tree's
processes): side by side in one run gives the before/after, with the load printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tempfile
import time
from pathlib import Path

from tests.sfu.live import ROOT, start_sfu, start_signal, stop, users_in_a_room


def events(log: Path) -> list[dict]:
    """signaling's JSON log lines."""
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line[line.index("{"):]))
        except ValueError:
            continue
    return out


def count(log: Path, since: int) -> dict[str, int]:
    seen = events(log)[since:]
    return {kind: sum(1 for e in seen if e.get("event") == kind)
            for kind in ("service.suspect", "service.dead", "room.moved")}


async def run(stall: float, slow: float, quiet: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        signal_proc, port = await start_signal(tmp_path, 1, call_server=None)
        servers = {}
        clients = []
        try:
            for name in ("sfu-a", "sfu-b"):
                servers[name] = await start_sfu(tmp_path, port, name)
            for i in range(4):
                names = [f"st{os.getpid() % 1000}x{i}{n}" for n in range(2)]
                _, room = await users_in_a_room(port, names)
                clients += room
            await asyncio.sleep(quiet)
            log = tmp_path / "signal.log"
            result = {"tree": ROOT}
            mark = len(events(log))
            os.kill(signal_proc.pid, signal.SIGSTOP)
            await asyncio.sleep(stall)
            os.kill(signal_proc.pid, signal.SIGCONT)
            await asyncio.sleep(quiet)
            result["own-stall"] = count(log, mark)
            mark = len(events(log))
            os.kill(servers["sfu-a"]["sfu"].pid, signal.SIGSTOP)
            await asyncio.sleep(slow)
            os.kill(servers["sfu-a"]["sfu"].pid, signal.SIGCONT)
            await asyncio.sleep(quiet)
            result["slow-server"] = count(log, mark)
            mark = len(events(log))
            killed = time.monotonic()
            servers["sfu-b"]["sfu"].kill()
            while not count(log, mark)["room.moved"] and time.monotonic() - killed < quiet + 10:
                await asyncio.sleep(0.02)
            result["killed_first_move_s"] = round(time.monotonic() - killed, 2)
            await asyncio.sleep(quiet)
            result["killed"] = count(log, mark)
            return result
        finally:
            for client in clients:
                await client.close()
            for server in servers.values():
                if server["sfu"].returncode is None:
                    os.kill(server["sfu"].pid, signal.SIGCONT)
                await stop(server["sfu"])
            await stop(signal_proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stall", type=float, default=4.0, help="seconds signaling is stopped")
    parser.add_argument("--slow", type=float, default=3.5, help="seconds sfu-a is stopped")
    parser.add_argument("--quiet", type=float, default=3.0, help="seconds after each event")
    args = parser.parse_args()
    started = time.monotonic()
    result = asyncio.run(run(args.stall, args.slow, args.quiet))
    result["load"] = os.getloadavg()[0]
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
