"""Benchmark of netcore-signal: connections held, call set-ups per second, set-up latency.

    python3 bench/signaling.py [--connections 10000] [--pairs 50] [--seconds 5] [--two-nodes]

Runs the daemon as a subprocess (one node; with ``--two-nodes`` two nodes on
a fresh redis-server, callers on one and callees on the other), then:

1. opens ``--connections`` WebSocket sessions (bearer tokens minted with the
   node's token secret, so no password hashing) and reads the daemon's RSS;
2. runs ``--pairs`` caller/callee pairs that loop invite -> incoming ->
   accept -> accepted -> hang-up for ``--seconds``; set-up latency is from
   the invite sent to ``call.accepted`` received by the caller.

The reference is a bare websockets relay doing the same four-message
exchange with no sessions, validation or state (the floor for any JSON
signaling server on this library); the ratio says what our logic costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from websockets.asyncio.client import connect  # noqa: E402
from websockets.asyncio.server import serve  # noqa: E402

from servers.signal.credentials import issue_token  # noqa: E402
from tests.conftest import free_port_both as free_port  # noqa: E402

SECRET = "bench-secret"


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def start_node(data_dir: str, *extra: str) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "servers.signal.main", "--port", "0", "--data-dir", data_dir,
        "--token-secret", SECRET, "--friends-only", "false", "--rate", "100000", "--burst", "100000",
        "--log-level", "WARNING", *extra, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    line = await proc.stdout.readline()
    return proc, int(line.split()[2])


def token(user: str) -> str:
    return issue_token(SECRET.encode(), user, int(time.time()) + 3600)


async def open_client(port: int, user: str):
    ws = await connect(f"ws://127.0.0.1:{port}/v1/ws", additional_headers={"Authorization": f"Bearer {token(user)}"},
                       open_timeout=60, ping_interval=None, compression=None)
    await ws.recv()  # welcome
    return ws


async def hold_connections(port: int, count: int, pid: int | None) -> tuple[float, float]:
    """Open ``count`` sessions; returns (seconds to open, server RSS MiB with them open)."""
    start = time.perf_counter()
    clients = []
    batch = 200
    for i in range(0, count, batch):
        clients += await asyncio.gather(*(open_client(port, f"held{i + j}") for j in range(min(batch, count - i))))
    elapsed = time.perf_counter() - start
    await asyncio.sleep(0.5)
    rss = rss_mib(pid) if pid else 0.0
    await asyncio.gather(*(ws.close() for ws in clients))
    return elapsed, rss


async def call_loop(caller, callee, callee_name: str, stop_at: float, latencies: list[float]) -> None:
    n = 0
    while time.perf_counter() < stop_at:
        n += 1
        t0 = time.perf_counter()
        await caller.send(json.dumps({"v": 1, "type": "call.invite", "id": f"i{n}",
                                      "payload": {"to": callee_name, "media": ["audio"]}}))
        while True:
            m = json.loads(await callee.recv())
            if m["type"] == "call.incoming":
                call_id = m["payload"]["call_id"]
                break
        await callee.send(json.dumps({"v": 1, "type": "call.accept", "payload": {"call_id": call_id}}))
        while True:
            m = json.loads(await caller.recv())
            if m["type"] == "call.accepted":
                break
        latencies.append(time.perf_counter() - t0)
        await caller.send(json.dumps({"v": 1, "type": "call.hangup", "payload": {"call_id": call_id}}))
        while True:
            m = json.loads(await callee.recv())
            if m["type"] == "call.ended":
                break


async def run_calls(port_caller: int, port_callee: int, pairs: int, seconds: float, tag: str) -> list[float]:
    callers = await asyncio.gather(*(open_client(port_caller, f"{tag}caller{i}") for i in range(pairs)))
    callees = await asyncio.gather(*(open_client(port_callee, f"{tag}callee{i}") for i in range(pairs)))
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    await asyncio.gather(*(call_loop(callers[i], callees[i], f"{tag}callee{i}", stop_at, latencies)
                           for i in range(pairs)))
    await asyncio.gather(*(ws.close() for ws in callers + callees))
    return latencies


# --- the reference: a bare relay ----------------------------------------------


async def bare_relay(port: int):
    """Forwards invite/accept/hangup between named sockets; no validation, no state machine."""
    sockets: dict[str, object] = {}
    counter = 0

    async def handler(ws):
        nonlocal counter
        user = ws.request.headers["Authorization"].split()[1].split(".")[0]
        sockets[user] = ws
        await ws.send(json.dumps({"v": 1, "type": "welcome", "payload": {}}))
        peer_of: dict[str, str] = {}
        async for text in ws:
            m = json.loads(text)
            if m["type"] == "call.invite":
                counter += 1
                call_id = str(counter)
                peer_of[call_id] = m["payload"]["to"]
                callee = sockets[m["payload"]["to"]]
                callee.peer = ws  # type: ignore[attr-defined]
                await callee.send(json.dumps({"v": 1, "type": "call.incoming", "payload": {"call_id": call_id}}))
            elif m["type"] == "call.accept":
                await ws.peer.send(json.dumps({"v": 1, "type": "call.accepted", "payload": m["payload"]}))
            elif m["type"] == "call.hangup":
                await sockets[peer_of.pop(m["payload"]["call_id"])].send(
                    json.dumps({"v": 1, "type": "call.ended", "payload": m["payload"]}))

    return await serve(handler, "127.0.0.1", port, compression=None, ping_interval=None)


def summary(name: str, latencies: list[float], seconds: float) -> tuple[float, float, float]:
    lat = sorted(latencies)
    rate = len(lat) / seconds
    p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
    print(f"{name:<28} {rate:9.0f} set-ups/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   ({len(lat)} calls)")
    return rate, p50, p99


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--two-nodes", action="store_true")
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="signal-bench-")
    procs = []
    redis_proc = None
    try:
        proc, port = await start_node(os.path.join(data, "one"))
        procs.append(proc)
        opened, rss = await hold_connections(port, args.connections, proc.pid)
        print(f"connections held: {args.connections} opened in {opened:.1f} s "
              f"({args.connections / opened:.0f}/s); daemon RSS {rss:.0f} MiB "
              f"({rss * 1024 / max(1, args.connections):.1f} KiB per connection)")
        ours = summary("netcore-signal, one node", await run_calls(port, port, args.pairs, args.seconds, "a"),
                       args.seconds)
        ref_port = free_port()
        ref = await bare_relay(ref_port)
        base = summary("bare websockets relay (ref)", await run_calls(ref_port, ref_port, args.pairs, args.seconds,
                                                                      "r"), args.seconds)
        ref.close()
        print(f"ratio ours/ref: set-ups/s {ours[0] / base[0]:.2f}, p50 {ours[1] / base[1]:.2f}x, "
              f"p99 {ours[2] / base[2]:.2f}x")
        if args.two_nodes:
            redis_port = free_port()
            redis_proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(redis_port), "--bind",
                                           "127.0.0.1", "--save", "", "--appendonly", "no"],
                                          stdout=subprocess.DEVNULL)
            await asyncio.sleep(0.3)
            url = f"redis://127.0.0.1:{redis_port}/0"
            a, port_a = await start_node(os.path.join(data, "A"), "--redis", url, "--node-id", "A")
            b, port_b = await start_node(os.path.join(data, "B"), "--redis", url, "--node-id", "B")
            procs += [a, b]
            summary("netcore-signal, two nodes", await run_calls(port_a, port_b, args.pairs, args.seconds, "x"),
                    args.seconds)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            await p.wait()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
