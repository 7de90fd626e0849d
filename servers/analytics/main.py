"""netcore-analytics: the worker that aggregates analytics events, and the report.

``netcore-analytics worker --redis redis://... [--group analytics --consumer w1]``
reads the ``nc:analytics`` stream as one consumer of a group (run several for
more throughput; a dead one's pending entries are claimed by the others);
``netcore-analytics worker --jsonl analytics.jsonl ...`` reads files instead.
Aggregates go to ``--database`` (an SQLite file, or a ``postgresql://`` URL).

``netcore-analytics report --since 24h [--html report.html]`` prints a summary
table and writes a self-contained HTML report with charts;
``netcore-analytics serve --port 8090`` serves the same charts live.

On exit the worker prints one JSON line of counters on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import socket
import sys
import time

from .producer import STREAM
from .sources import JsonLinesSource, RedisSource
from .store import open_store
from .worker import Worker

__all__ = ["main", "parse_span"]

log = logging.getLogger("netcore.analytics")


def parse_span(text: str) -> float:
    """Seconds of ``90s``, ``15m``, ``24h`` or ``7d``."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a span like 30m, 24h or 7d")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netcore-analytics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="analytics.db",
                        help="SQLite file or postgresql:// URL of the aggregates (default: analytics.db)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="consume events into the aggregates")
    source = worker.add_mutually_exclusive_group(required=True)
    source.add_argument("--redis", metavar="URL", help="read the stream as one consumer of a group")
    source.add_argument("--jsonl", metavar="FILE", action="append", help="read JSON lines files; repeatable")
    worker.add_argument("--stream", default=STREAM)
    worker.add_argument("--group", default="analytics")
    worker.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}")
    worker.add_argument("--claim-idle", type=float, default=30.0, metavar="SECONDS",
                        help="claim other consumers' entries pending this long (default 30)")
    worker.add_argument("--batch", type=int, default=500)
    worker.add_argument("--until-drained", action="store_true",
                        help="exit once nothing is left to read and nothing is pending")
    report = commands.add_parser("report", help="summary table and HTML report")
    report.add_argument("--since", type=parse_span, default=parse_span("24h"), metavar="SPAN")
    report.add_argument("--until", type=float, default=None, metavar="UNIX", help="end of the span (default: now)")
    report.add_argument("--html", default="analytics-report.html", metavar="FILE")
    report.add_argument("--worst", type=int, default=10, help="worst calls listed with their timelines")
    serve = commands.add_parser("serve", help="the operator view: the report's charts live over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090, help="0 picks a free port (printed)")
    serve.add_argument("--since", type=parse_span, default=parse_span("24h"), metavar="SPAN")
    serve.add_argument("--refresh", type=int, default=10, metavar="SECONDS", help="page reload interval")
    serve.add_argument("--worst", type=int, default=10)
    return parser


def run_worker(args: argparse.Namespace) -> int:
    store = open_store(args.database)
    if args.redis:
        source = RedisSource(args.redis, args.stream, args.group, args.consumer, count=args.batch,
                             claim_idle=args.claim_idle)
    else:
        paths = [os.path.abspath(p) for p in args.jsonl]
        source = JsonLinesSource(paths, {p: store.offset(p) for p in paths}, count=args.batch)
    worker = Worker(source, store)

    def stop(signum: int, frame: object) -> None:
        worker.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("worker %s reading %s", args.consumer, args.redis and args.stream or ",".join(args.jsonl))
    started = time.monotonic()
    stats = worker.run(until_drained=args.until_drained)
    source.close()
    store.close()
    print(json.dumps({"consumer": args.consumer, "batches": stats.batches, "records": stats.records,
                      "claimed": source.claimed, "malformed": stats.malformed, "unknown": stats.unknown,
                      "seconds": round(time.monotonic() - started, 3)}), flush=True)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from .report import build_report, render_html, render_table

    store = open_store(args.database)
    until = time.time() if args.until is None else args.until
    report = build_report(store, until - args.since, until, worst=args.worst)
    store.close()
    sys.stdout.write(render_table(report))
    with open(args.html, "w", encoding="utf-8") as fh:
        fh.write(render_html(report))
    print(f"HTML report: {args.html}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from .live import LiveView, make_server

    open_store(args.database).close()  # the schema exists before the first request
    server = make_server(LiveView(args.database, args.since, args.refresh, args.worst), args.host, args.port)
    host, port = server.server_address[:2]
    print(f"operator view on http://{host}:{port}/", flush=True)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()
    return 0


COMMANDS = {"worker": run_worker, "report": run_report, "serve": run_serve}


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        sys.exit(COMMANDS[args.command](args))
    except OSError as exc:
        log.error("%s", exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
