"""Benchmark of netcore-analytics: events per second ingested into the aggregates.

    python3 bench/analytics.py [--calls 3000] [--batch 500 --batch 2000]

A seeded synthetic day (``servers.analytics.synth``) is written once to two
JSON lines files and once to a Redis stream on a fresh redis-server, then
``netcore-analytics worker --until-drained`` runs as one process and as two
(JSON lines: one file each; Redis: two consumers of one group) into a fresh
SQLite database.  The rate is events accepted / wall time from the first
worker's start to the last worker's exit, rollups refreshed included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import redis  # noqa: E402

from servers.analytics.synth import synthesize  # noqa: E402
from tests.conftest import free_port  # noqa: E402


def _worker(database: str, *source: str, batch: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "servers.analytics.main", "--log-level", "warning",
                             "--database", database, "worker", *source, "--batch", str(batch), "--until-drained"],
                            cwd=ROOT, stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=ROOT))


def _run(sources: list[list[str]], database: str, batch: int) -> tuple[int, float]:
    started = time.perf_counter()
    procs = [_worker(database, *s, batch=batch) for s in sources]
    records = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        assert proc.returncode == 0
        records += json.loads(out.decode().strip().splitlines()[-1])["records"]
    return records, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--batch", type=int, action="append", help="events per batch; repeatable (500, 2000)")
    args = parser.parse_args()
    events, _ = synthesize(seed=42, calls=args.calls)
    work = tempfile.mkdtemp(prefix="netcore-bench-analytics-")
    port = free_port(socket.SOCK_STREAM)
    server = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        for _ in range(100):
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        files = [os.path.join(work, f"part{n}.jsonl") for n in range(2)]
        for n, path in enumerate(files):
            with open(path, "w") as fh:
                fh.writelines(json.dumps(e) + "\n" for e in events[n::2])
        r = redis.Redis.from_url(url)
        for stream in ("one", "two"):
            pipe = r.pipeline(transaction=False)
            for i, e in enumerate(events):
                pipe.xadd(stream, {"record": json.dumps(e)})
                if i % 2000 == 1999:
                    pipe.execute()
            pipe.execute()
        print(f"{len(events):,} events of {args.calls:,} calls; SQLite")
        for batch in args.batch or [500, 2000]:
            runs = [
                ("JSON lines, 1 worker", [["--jsonl", files[0], "--jsonl", files[1]]]),
                ("JSON lines, 2 workers", [["--jsonl", files[0]], ["--jsonl", files[1]]]),
                ("Redis stream, 1 worker", [["--redis", url, "--stream", "one", "--group", f"b{batch}"]]),
                ("Redis stream, 2 workers", [["--redis", url, "--stream", "two", "--group", f"b{batch}",
                                              "--consumer", f"w{n}"] for n in range(2)]),
            ]
            for n, (name, sources) in enumerate(runs):
                records, seconds = _run(sources, os.path.join(work, f"run{batch}-{n}.db"), batch)
                assert records >= len(events)
                print(f"batch {batch:<5} {name:<24} {len(events) / seconds:>10,.0f} events/s  ({seconds:.1f} s)")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
